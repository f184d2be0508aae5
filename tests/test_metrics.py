"""Evaluation metrics (finetune_cli/data/metrics.py) on known predictions, checked by hand and against
scikit-learn, and the test metrics of a real tiny run against the predictions of its reloaded model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from helpers import tiny_config
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from finetune_cli.data.metrics import ClassMetrics, evaluation_from, improves

# 5 labels: class 3 is never predicted, class 4 neither occurs nor is predicted
LABELS = [0, 0, 1, 1, 2, 2, 2, 3]
PREDICTED = [0, 1, 1, 1, 2, 0, 2, 1]


def test_known_predictions_by_hand():
    ev = evaluation_from(LABELS, PREDICTED, 5, loss=0.25)
    assert ev.loss == 0.25 and ev.accuracy == 5 / 8
    assert ev.confusion_matrix == [[1, 1, 0, 0, 0], [0, 2, 0, 0, 0], [1, 0, 2, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert ev.per_class[0] == ClassMetrics(precision=0.5, recall=0.5, f1=0.5, support=2)
    assert ev.per_class[1].precision == 0.5 and ev.per_class[1].recall == 1.0
    assert ev.per_class[1].f1 == pytest.approx(2 / 3)
    assert ev.per_class[2].precision == 1.0 and ev.per_class[2].recall == pytest.approx(2 / 3)
    assert ev.per_class[3] == ClassMetrics(0.0, 0.0, 0.0, 1)  # never predicted: 0, not NaN or a warning
    assert ev.per_class[4] == ClassMetrics(0.0, 0.0, 0.0, 0)
    assert ev.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0.8) / 5)  # every label counts, absent ones as 0


@pytest.mark.parametrize("num_labels", [2, 3, 4])
def test_equals_scikit_learn(num_labels):
    generator = torch.Generator().manual_seed(num_labels)
    labels = torch.randint(num_labels, (200,), generator=generator).tolist()
    predicted = torch.randint(num_labels - 1, (200,), generator=generator).tolist()  # the last class never
    ev = evaluation_from(labels, predicted, num_labels, loss=1.0)
    classes = list(range(num_labels))
    assert ev.accuracy == accuracy_score(labels, predicted)
    assert ev.macro_f1 == f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=classes,
                                                                     zero_division=0)
    assert [c.precision for c in ev.per_class] == precision.tolist()
    assert [c.recall for c in ev.per_class] == recall.tolist()
    assert [c.f1 for c in ev.per_class] == f1.tolist()
    assert [c.support for c in ev.per_class] == support.tolist()
    assert ev.confusion_matrix == confusion_matrix(labels, predicted, labels=classes).tolist()
    assert ev.per_class[-1].precision == 0.0 and ev.per_class[-1].support > 0


def test_accuracy_is_the_exact_share_of_correct_predictions():
    """The loop's accuracy was correct / seen before scikit-learn computed it: results must not move."""
    generator = torch.Generator().manual_seed(7)
    labels = torch.randint(3, (997,), generator=generator).tolist()
    predicted = torch.randint(3, (997,), generator=generator).tolist()
    correct = sum(a == b for a, b in zip(labels, predicted, strict=True))
    assert evaluation_from(labels, predicted, 3, 0.0).accuracy == correct / 997


def test_values_are_plain_json():
    ev = evaluation_from(LABELS, PREDICTED, 5, loss=0.25)
    text = json.dumps({"per_class": ev.per_class_json(), "matrix": ev.confusion_matrix, "f1": ev.macro_f1})
    assert json.loads(text)["per_class"][0] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert all(type(n) is int for row in ev.confusion_matrix for n in row)


def test_improves_knows_which_way_is_better():
    assert improves(0.8, 0.7, "accuracy") and improves(0.8, 0.7, "macro_f1") and not improves(0.8, 0.7, "loss")
    assert improves(0.3, 0.4, "loss")
    assert not improves(0.7, 0.7, "accuracy") and not improves(0.4, 0.4, "loss")  # a tie keeps the earlier


class FirstTokenClassifier(torch.nn.Module):
    """Predicts the class written as the first token id of each example (logits 0 elsewhere, 2 there)."""

    def __init__(self, num_labels: int):
        super().__init__()
        self.num_labels = num_labels

    def forward(self, input_ids, attention_mask, token_type_ids):
        return SimpleNamespace(logits=2.0 * torch.nn.functional.one_hot(input_ids[:, 0], self.num_labels).float())


def test_evaluate_scores_every_example_of_a_loader_once():
    """`train.evaluate` over batches reordered by length: each prediction stays with its label."""
    from finetune_cli.data.batches import make_loader
    from finetune_cli.data.objective import SINGLE_LABEL
    from finetune_cli.data.tokens import Encoded
    from finetune_cli.training.devices import distributed_accelerator
    from finetune_cli.training.evaluate import evaluate

    ids = [[p] + [7] * (i % 5) for i, p in enumerate(PREDICTED)]  # lengths differ: batches are regrouped
    encoded = Encoded.from_lists(ids, [[0] * len(x) for x in ids], LABELS)
    loader = make_loader(encoded, 3, pad_id=0, group_by_length=True)
    accelerator = distributed_accelerator()
    ev = evaluate(FirstTokenClassifier(5), accelerator.prepare(loader), accelerator, SINGLE_LABEL)
    assert ev == evaluation_from(LABELS, PREDICTED, 5, ev.loss)
    logits = 2.0 * torch.nn.functional.one_hot(torch.tensor(PREDICTED), 5).float()
    assert ev.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor(LABELS)).item())


def test_a_run_records_the_test_metrics_of_its_reloaded_model(tmp_path):
    """summary.json's test metrics equal scikit-learn's on the predictions of the model reloaded from
    the run folder; metrics.jsonl records the validation ones."""
    from finetune_cli.config import config_from_dict
    from finetune_cli.data.splits import load_data
    from finetune_cli.runs.artifacts import load_run_model, predict
    from finetune_cli.runs.folder import RunFolder
    from finetune_cli.workflows.train import run_and_record

    cfg = config_from_dict(tiny_config("full", data={"dataset": "ag_news"}, train={"epochs": 2}))
    run_and_record(cfg, RunFolder.create(tmp_path, "run", False))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    test = load_data(cfg.data, cfg.seed).splits["test"]
    labels = [row["label"] for row in test]
    predicted = [p["label_id"] for p in predict(load_run_model(tmp_path / "run"), test)]  # `ftcli predict`'s path
    classes = list(range(4))
    matrix = summary["test_confusion_matrix"]
    assert matrix == confusion_matrix(labels, predicted, labels=classes).tolist()
    assert sum(map(sum, matrix)) == summary["data_sizes"]["test"] == len(labels)
    assert summary["inference_accuracy"] == sum(matrix[i][i] for i in classes) / len(labels)
    assert summary["inference_macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro",
                                                                   labels=classes, zero_division=0))
    assert [c["f1"] for c in summary["test_per_class"]] == pytest.approx(
        f1_score(labels, predicted, average=None, labels=classes, zero_division=0).tolist())
    assert summary["select_metric"] == "accuracy" and len(summary["label_names"]) == 4
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["val_accuracy"])
    assert summary["best_val_macro_f1"] == best["val_macro_f1"]
    for record in records:
        assert sum(map(sum, record["val_confusion_matrix"])) == summary["data_sizes"]["validation"]
        assert [c["support"] for c in record["val_per_class"]] == [sum(row) for row in record["val_confusion_matrix"]]


def test_records_keep_a_confusion_matrix_only_for_up_to_100_labels():
    """A 1,000-label task would write a million numbers into every metrics.jsonl record."""
    from finetune_cli.training.evaluate import evaluation_record

    small = evaluation_from([0, 1, 2], [0, 1, 1], 3, 0.5)
    large = evaluation_from(list(range(101)), list(range(101)), 101, 0.5)
    record = {"epoch": 1, "train_loss": 0.5}
    assert evaluation_record(small, **record).val_confusion_matrix == small.confusion_matrix
    assert "val_confusion_matrix" not in evaluation_record(large, **record).to_json()
    assert len(evaluation_record(large, **record).val_per_class) == 101
