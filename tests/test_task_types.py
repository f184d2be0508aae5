"""Every task type end to end on the tiny model: regression (the bundled STS-B sample), multi-label
(the bundled GoEmotions sample), and single-label with GLUE's other metrics (MCC for CoLA, F1 of
label 1 for MRPC). Each trains, evaluates with the right metric, compares, plots, predicts and
exports; the exported model, loaded with plain transformers, predicts what `ftcli predict` prints.
`data.task: auto` decides from the labels; bad labels are one line naming the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT, ftcli

from finetune_cli.config import DataConfig
from finetune_cli.data.splits import load_data
from finetune_cli.errors import DataError

SAMPLES = ROOT / "finetune_cli" / "samples"
TINY = ["--set", "model.name=tiny-random-bert", "--set", "model.max_length=32", "--set", "train.epochs=2",
        "--set", "data.max_train_samples=64", "--set", "data.max_eval_samples=32", "--set", "method.mode=full",
        "--set", "train.learning_rate=1e-3"]


def train(config: Path, runs: Path, name: str, *extra: str) -> tuple[Path, dict]:
    result = ftcli("train", config, "--runs-dir", runs, "--name", name, *TINY, *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    return runs / name, json.loads((runs / name / "summary.json").read_text())


def predict(run: Path, *inputs: str) -> dict:
    result = ftcli("predict", run, *inputs)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[0])


def exported_logits(run: Path, out: Path, text: str, pair: str | None = None) -> tuple[torch.Tensor, object]:
    """Export `run` (a full run: a transformers folder) and the plain transformers model's logits."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert ftcli("export", run, out).exit_code == 0
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tokenizer(text, pair, return_tensors="pt", truncation=True, max_length=32)).logits[0]
    return logits, model.config


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> tuple[Path, dict]:
    return train(ROOT / "configs" / "stsb_sample.yaml", tmp_path_factory.mktemp("stsb"), "stsb",
                 "--set", f"data.source={SAMPLES / 'stsb'}")


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory) -> tuple[Path, dict]:
    return train(ROOT / "configs" / "goemotions_sample.yaml", tmp_path_factory.mktemp("go"), "go",
                 "--set", f"data.source={SAMPLES / 'goemotions'}")


def test_regression_trains_with_pearson_and_predicts_a_number_the_export_agrees_with(regression_run, tmp_path):
    run, summary = regression_run
    assert summary["task_type"] == "regression" and summary["select_metric"] == "pearson"
    assert summary["label_names"] == ["label"] and summary["test_confusion_matrix"] is None
    assert {"inference_pearson", "inference_spearman", "inference_mse"} <= set(summary)
    assert "inference_accuracy" not in summary
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all({"val_pearson", "val_spearman", "val_mse"} <= set(r) for r in records)
    text, pair = "A man is playing a guitar.", "Someone plays the guitar."
    value = predict(run, "--text", text, "--pair", pair)["value"]
    logits, config = exported_logits(run, tmp_path / "export", text, pair)
    assert config.problem_type == "regression" and logits.shape == (1,)
    assert float(logits[0]) == pytest.approx(value, abs=1e-5)


def test_multilabel_trains_with_micro_f1_and_predicts_a_label_set_the_export_agrees_with(multilabel_run,
                                                                                           tmp_path):
    run, summary = multilabel_run
    assert summary["task_type"] == "multi_label" and summary["select_metric"] == "micro_f1"
    assert len(summary["label_names"]) == 28 and "neutral" in summary["label_names"]
    assert {"inference_micro_f1", "inference_macro_f1", "inference_subset_accuracy"} <= set(summary)
    assert len(summary["test_per_class"]) == 28
    text = "Thank you so much, this made my day!"
    got = predict(run, "--text", text)
    assert set(got["scores"]) == set(summary["label_names"])
    assert got["labels"] == [n for n in summary["label_names"] if got["scores"][n] >= 0.3]  # train.threshold
    logits, config = exported_logits(run, tmp_path / "export", text)
    assert config.problem_type == "multi_label_classification"
    probs = logits.sigmoid()
    assert [config.id2label[i] for i in range(len(probs)) if probs[i] >= 0.3] == got["labels"]


def test_compare_and_plots_show_each_task_types_own_metric(regression_run, multilabel_run, tmp_path):
    result = ftcli("compare", regression_run[0].parent, "--format", "json")
    (row,) = json.loads(result.stdout)
    assert row["metric"] == "pearson" and row["inference_pearson"] == regression_run[1]["inference_pearson"]
    result = ftcli("compare", multilabel_run[0].parent, "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert "micro-F1" in result.stdout
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["learning_curves_micro_f1_goemotions.png", "micro_f1_vs_params_goemotions.png"]
    result = ftcli("compare", regression_run[0].parent, "--metric", "accuracy")
    assert "a regression run has no accuracy" in result.stderr


def binary_task(folder: Path, metric: str) -> Path:
    """A CoLA/MRPC-shaped task of one's own: integer labels 0/1, 1 in 3 positive."""
    folder.mkdir()
    for split, n in (("train", 90), ("validation", 30), ("test", 30)):
        rows = [{"sentence": f"sentence {i} is {'fine' if i % 3 == 0 else 'odd'}", "label": int(i % 3 == 0)}
                for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = folder / "task.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": str(folder), "text": ["sentence"], "label": "label",
                                               "label_names": ["no", "yes"]},
                                      "train": {"select_metric": metric, "batch_size": 16}}))
    return config


@pytest.mark.parametrize("metric", ["mcc", "f1"])
def test_glue_metrics_of_a_binary_task_select_and_headline(tmp_path, metric):
    run, summary = train(binary_task(tmp_path / "task", metric), tmp_path / "runs", "binary")
    assert summary["task_type"] == "single_label" and summary["select_metric"] == metric
    assert {"inference_accuracy", "inference_mcc", "inference_f1"} <= set(summary)
    matrix = summary["test_confusion_matrix"]  # f1 is the F1 of label 1 ("yes")
    tp, fp, fn = matrix[1][1], matrix[0][1], matrix[1][0]
    assert summary["inference_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    result = ftcli("compare", tmp_path / "runs", "--format", "markdown")
    assert {"mcc": "inference MCC", "f1": "inference F1"}[metric] in result.stdout


def test_a_metric_that_does_not_fit_the_task_type_is_a_config_error(tmp_path):
    result = ftcli("train", ROOT / "configs" / "stsb_sample.yaml", "--runs-dir", tmp_path, *TINY,
                   "--set", f"data.source={SAMPLES / 'stsb'}", "--set", "train.select_metric=mcc")
    assert result.exit_code == 2
    assert result.output.strip().endswith("train.select_metric: 'mcc' does not fit a regression task; expected "
                                          "one of auto, pearson, spearman, mse, loss")
    assert not list(tmp_path.iterdir())


def own(tmp_path: Path, rows: list[dict], **data) -> DataConfig:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DataConfig(source=str(path), text=("text",), **data)


def test_auto_tells_the_task_types_apart(tmp_path):
    rows = [{"text": f"t{i}", "y": i % 2, "score": i / 3, "tags": ["a", "b"][: i % 3], "a": i % 2, "b": 1 - i % 2,
             "joined": ["x;y", "y;z", "x;z"][i % 3]} for i in range(30)]
    assert load_data(own(tmp_path, rows, label="y"), 0).spec.objective.name == "single_label"
    assert load_data(own(tmp_path, rows, label="score"), 0).spec.objective.name == "regression"
    tags = load_data(own(tmp_path, rows, label="tags"), 0).spec
    assert tags.objective.name == "multi_label" and tags.label_names == ("a", "b")  # [] rows: no labels
    columns = load_data(own(tmp_path, rows, label=("a", "b")), 0)
    assert columns.spec.objective.name == "multi_label" and columns.spec.label_names == ("a", "b")
    with pytest.raises(DataError, match="look like several labels joined by ';'.*data.label_separator: ';'"):
        load_data(own(tmp_path, rows, label="joined"), 0)
    joined = load_data(own(tmp_path, rows, label="joined", label_separator=";"), 0)
    assert joined.spec.label_names == ("x", "y", "z")
    first = joined.parts["train"].rows[0]["label"]
    assert sorted(first) == [0.0, 1.0, 1.0]  # two of three labels


@pytest.mark.parametrize(("label", "task", "message"), [
    (float("nan"), "regression", "row 2: label nan is not a finite number (regression)"),
    ("high", "regression", "row 2: label 'high' is not a number (regression"),
    (["a", "zzz"], "multi_label", "row 2: label 'zzz' does not occur in train"),
])
def test_bad_labels_of_the_other_task_types_are_one_line_naming_the_row(tmp_path, label, task, message):
    good = [{"text": f"t{i}", "label": ["a", "b"][i % 2: i % 2 + 1] if task == "multi_label" else i / 7}
            for i in range(20)]
    train_rows = good[:10]
    test_rows = [good[10], {"text": "bad", "label": label}, *good[11:]]
    folder = tmp_path / "data"
    folder.mkdir()
    for split, rows in (("train", train_rows), ("test", test_rows)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        load_data(DataConfig(source=str(folder), text=("text",), task=task), 0)
    assert "\n" not in str(info.value) and message in str(info.value), str(info.value)


def test_a_threshold_outside_0_1_is_refused():
    from finetune_cli.config import config_from_dict
    from finetune_cli.errors import ConfigError

    for bad in (0, 1.5):
        with pytest.raises(ConfigError, match="train.threshold"):
            config_from_dict({"train": {"threshold": bad}})


def test_f1_needs_two_labels(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": str(tmp_path / "d.jsonl"), "text": ["text"]},
                                      "train": {"select_metric": "f1"}}))
    result = ftcli("train", config, "--runs-dir", tmp_path / "runs", *TINY)
    assert result.exit_code == 2 and "'f1' is the F1 of label 1 of a two-label task; this one has 3 labels" \
        in result.output


def test_a_regression_label_of_minus_one_is_a_number_not_the_unlabeled_marker(tmp_path):
    rows = [{"text": f"t{i}", "score": [-1, 0.5, 1.5][i % 3]} for i in range(30)]
    data = load_data(own(tmp_path, rows, label="score"), 0)
    assert data.spec.objective.name == "regression" and sum(data.sizes().values()) == 30
    assert not [n for n in data.notes if "dropped" in n]


def test_a_run_recorded_before_select_metric_auto_resumes_and_groups_with_new_ones():
    from finetune_cli.runs.compare import normalized

    old = {"train": {"select_metric": "accuracy"}}
    assert normalized(old) == normalized({"train": {"select_metric": "auto"}})
    assert normalized({}, "regression")["train"]["select_metric"] == "pearson"
