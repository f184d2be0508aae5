"""Class balance: which tasks are imbalanced (select_metric auto -> macro-F1), balanced class
weights, the collapse warning (log, summary.json, compare), and `train.learning_rate: auto`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import ftcli, tiny_config
from sklearn.utils.class_weight import compute_class_weight

from finetune_cli.config_yaml import dump_yaml, safe_load
from finetune_cli.data.balance import balanced_weights, collapse_warning, imbalance_share, is_imbalanced
from finetune_cli.data.objective import SingleLabel
from finetune_cli.methods.registry import METHODS


@pytest.mark.parametrize(("counts", "expected"), [
    ([90, 10], True), ([60, 40], False), ([67, 33], True), ([66, 34], False),  # two labels: from 2:1
    ([25, 25, 25, 25], False), ([50, 20, 20, 10], True), ([49, 21, 20, 10], False),  # four: from 2/4
    ([1] * 10, False), ([30] + [10] * 9, True), ([21] + [11] * 9, False),  # ten labels: from 20%
])
def test_a_task_is_imbalanced_from_twice_the_uniform_share(counts, expected):
    assert is_imbalanced(counts) is expected


def test_the_imbalance_share_is_two_over_k_but_at_most_two_thirds():
    assert [imbalance_share(k) for k in (2, 3, 4, 10)] == [2 / 3, 2 / 3, 0.5, 0.2]


def test_balanced_weights_are_scikit_learns():
    labels = [0] * 70 + [1] * 20 + [2] * 10
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    assert balanced_weights([70, 20, 10]) == pytest.approx(tuple(expected))
    assert balanced_weights([5, 0, 5]) == (1.0, 0.0, 1.0)  # a class absent from train weighs nothing


def test_the_weighted_loss_is_the_weighted_mean_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 2, 2])
    weights = (0.5, 2.0, 1.0)
    per_example = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    w = torch.tensor(weights)[labels]
    got = SingleLabel(class_weights=weights).loss(logits, labels)
    assert got.item() == pytest.approx(((w * per_example).sum() / w.sum()).item())
    summed = SingleLabel(class_weights=weights).loss(logits, labels, reduction="sum")  # an evaluation's
    assert summed.item() == pytest.approx(per_example.sum().item())  # plain cross-entropy
    assert SingleLabel().loss(logits, labels).item() == pytest.approx(per_example.mean().item())


NAMES = ("business", "other")


def test_a_model_predicting_one_class_is_a_collapse():
    found = collapse_warning([[0, 16], [0, 144]], 0.9, 0.474, NAMES)
    assert found == ("the kept model predicts 'other' for 100% of validation (90% are); macro-F1 0.47, "
                     "accuracy 0.90: try a higher train.learning_rate, more train.epochs, "
                     "train.select_metric: macro_f1 or train.class_weights: balanced")


def test_rare_classes_missed_is_a_collapse_and_a_good_model_is_not():
    assert "misses the rare classes" in collapse_warning([[4, 12], [10, 134]], 0.8625, 0.595, NAMES)
    assert collapse_warning([[12, 4], [6, 138]], 0.9375, 0.84, NAMES) is None
    assert collapse_warning([[0, 2], [0, 158]], 0.9875, 0.5, NAMES) is not None  # gap, though 99% are "other"
    assert collapse_warning([[0, 1], [0, 159]], 0.99375, 0.9, NAMES) is None  # 99% true share, small gap
    assert collapse_warning(None, None, None, NAMES) is None and collapse_warning([[0, 0], [0, 0]], 0, 0, NAMES) is None
    # a perfect model on a validation split without the third class: macro-F1 2/3 is no collapse
    assert collapse_warning([[8, 0, 0], [0, 8, 0], [0, 0, 0]], 1.0, 2 / 3, ("a", "b", "c")) is None


def write_task(tmp_path, rows: list[tuple[str, str]]):
    path = tmp_path / "task.csv"
    path.write_text("article,topic\n" + "".join(f"{t},{label}\n" for t, label in rows))
    return path


def train_own(tmp_path, source, mode: str, **train) -> tuple[object, dict, dict]:
    cfg = tiny_config(mode, data={"source": str(source), "text": "article", "label": "topic"},
                      train={"epochs": 1, "batch_size": 16, **train})
    del cfg["data"]["dataset"]
    cfg["train"].pop("learning_rate") if "learning_rate" not in train else None
    path = tmp_path / "own.yaml"
    path.write_text(dump_yaml(cfg))
    result = ftcli("train", path, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "own"
    return result, json.loads((run / "summary.json").read_text()), safe_load((run / "config.yaml").read_text())


def test_a_collapsed_run_warns_in_the_log_the_summary_and_compare(tmp_path):
    """Every article the same text: the model gives one answer for all, so it predicts one class for
    all of validation, 1 in 8 of which is rare; the defaults pick macro-F1 and the head's own rate."""
    source = write_task(tmp_path, [("the same words", "rare" if i % 8 == 0 else "common") for i in range(160)])
    result, summary, config = train_own(tmp_path, source, "head")
    assert config["train"]["learning_rate"] == "auto" and config["train"]["select_metric"] == "auto"
    assert summary["learning_rate"] == METHODS["head"].learning_rate and summary["select_metric"] == "macro_f1"
    assert "train.learning_rate: auto -> 0.1 (head's own)" in result.output
    assert "train.select_metric: auto -> macro_f1 (single_label task, imbalanced training labels)" in result.output
    (warning,) = summary["warnings"]
    assert warning.startswith("the kept model predicts 'common' for 100% of validation (88% are)")
    assert "WARNING: the kept model predicts 'common'" in result.output
    shown = ftcli("compare", tmp_path / "runs")
    assert shown.exit_code == 0 and "own: the kept model predicts 'common'" in shown.output
    (row,) = [line for line in shown.output.splitlines() if line.startswith("│ own")]
    assert row.startswith("│ own ! │")  # the row is marked


def test_a_balanced_task_keeps_accuracy_and_no_warning(tmp_path):
    words = ("good fine great", "bad awful poor")
    source = write_task(tmp_path, [(words[i % 2] + f" {i}", "pos" if i % 2 else "neg") for i in range(96)])
    result, summary, _ = train_own(tmp_path, source, "layerwise", learning_rate=3e-3)
    assert summary["select_metric"] == "accuracy" and summary["learning_rate"] == 3e-3
    assert "train.learning_rate: auto" not in result.output  # an explicit number is no auto


def test_class_weights_change_the_training_of_an_imbalanced_task(tmp_path):
    words = ("good fine great", "bad awful poor")
    source = write_task(tmp_path, [(words[i % 4 == 0] + f" {i}", "rare" if i % 4 == 0 else "common")
                                   for i in range(96)])
    losses = {}
    for weights in ("none", "balanced"):
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
        _, summary, _ = train_own(tmp_path, source, "head", class_weights=weights)
        metrics = (tmp_path / "runs" / "own" / "metrics.jsonl").read_text().splitlines()
        losses[weights] = json.loads(metrics[-1])["train_loss"]
    assert losses["none"] != losses["balanced"]  # a rare example weighs about 3x a common one


def test_class_weights_are_for_tasks_with_classes(tmp_path):
    cfg = tiny_config("head", data={"dataset": "imdb"}, train={"class_weights": "balanced"})
    cfg["data"] = {"source": str(tmp_path / "r.csv"), "text": ["text"], "label": "score", "task": "regression"}
    (tmp_path / "r.csv").write_text("text,score\n" + "".join(f"t {i},{i / 7:.3f}\n" for i in range(60)))
    (tmp_path / "r.yaml").write_text(dump_yaml(cfg))
    result = ftcli("train", tmp_path / "r.yaml", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "train.class_weights: 'balanced' is for a single-label task, not regression" in result.output
    assert not (tmp_path / "runs" / "r").exists()


def test_resuming_compares_auto_as_the_run_resolved_it(tmp_path):
    """`--resume` with `learning_rate: auto` matches a run recorded with the method's number, and a
    run recorded as auto matches its recorded rate even if the registry's changes later."""
    from finetune_cli.config import load_config
    from finetune_cli.workflows.train import recorded_difference

    source = write_task(tmp_path, [(f"text {i}", "a" if i % 2 else "b") for i in range(60)])
    _, summary, _ = train_own(tmp_path, source, "head", learning_rate=METHODS["head"].learning_rate)
    run = tmp_path / "runs" / "own"
    with_auto = load_config(tmp_path / "own.yaml", ["train.learning_rate=auto"])
    assert recorded_difference(with_auto, run) is None
    other = load_config(tmp_path / "own.yaml", ["train.learning_rate=0.05"])
    assert recorded_difference(other, run) == "train.learning_rate"
