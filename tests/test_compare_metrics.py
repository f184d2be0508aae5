"""`ftcli compare --metric macro_f1` in every format, with --best-of and --plot (confusion matrices);
runs recorded before macro-F1 existed still load, and are skipped with a reason under macro_f1."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from helpers import copy_run, ftcli, train_template_run

from finetune_cli.runs.read import read_run

# (mode, learning rate, seed, best val accuracy, best val macro-F1, test accuracy, test macro-F1): by
# validation accuracy full keeps 1e-4, by validation macro-F1 it keeps 3e-4; top keeps 1e-3 either way.
KNOWN = [
    ("full", 1e-4, 0, 0.80, 0.60, 0.70, 0.50), ("full", 1e-4, 1, 0.82, 0.62, 0.72, 0.52),
    ("full", 3e-4, 0, 0.79, 0.75, 0.90, 0.66), ("full", 3e-4, 1, 0.79, 0.77, 0.92, 0.68),
    ("top", 1e-3, 0, 0.60, 0.55, 0.61, 0.45), ("top", 1e-3, 1, 0.64, 0.57, 0.63, 0.47),
    ("top", 3e-3, 0, 0.61, 0.50, 0.40, 0.30), ("top", 3e-3, 1, 0.61, 0.50, 0.40, 0.30),
]
NEW_FIELDS = ("best_val_macro_f1", "inference_macro_f1", "test_per_class", "test_confusion_matrix", "select_metric")
OLD = "mode=layerwise_lr=0.001_seed=0"  # recorded before macro-F1: none of NEW_FIELDS


@pytest.fixture(scope="module")
def known_runs(tmp_path_factory):
    """Run folders with known summaries (one real tiny run copied and edited), and one old-style run."""
    root = tmp_path_factory.mktemp("compare_metrics")
    template = train_template_run(root / "seed")
    for mode, lr, seed, val, val_f1, test, test_f1 in KNOWN:
        copy_run(template, root / "runs" / f"mode={mode}_lr={lr:g}_seed={seed}", mode, lr, seed,
                 {"best_val_accuracy": val, "best_val_macro_f1": val_f1, "inference_accuracy": test,
                  "inference_macro_f1": test_f1})
    old = root / "runs" / OLD
    summary = copy_run(template, old, "layerwise", 1e-3, 0, {"inference_accuracy": 0.65})
    (old / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k not in NEW_FIELDS}))
    records = [json.loads(line) for line in (old / "metrics.jsonl").read_text().splitlines()]
    (old / "metrics.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if not k.startswith(("val_macro", "val_per", "val_conf"))}) + "\n"
        for r in records))
    return root / "runs"


def compare_json(runs, *args):
    result = ftcli("compare", runs, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return {r["mode"]: r for r in json.loads(result.stdout)}, result.stderr


def test_best_of_selects_on_validation_macro_f1_and_reports_test_macro_f1(known_runs):
    rows, stderr = compare_json(known_runs, "--best-of", "train.learning_rate", "--metric", "macro_f1")
    assert set(rows) == {"full", "top"}  # the old layerwise run has no macro-F1: left out, with the reason
    assert f"skipped {known_runs / OLD}: no macro-F1 recorded" in stderr
    full, top = rows["full"], rows["top"]
    assert full["best_of"] == {"train.learning_rate": 3e-4}  # by accuracy it would be 1e-4 (below)
    assert full["metric"] == "macro_f1" and full["n"] == 2
    assert full["inference_macro_f1"] == pytest.approx(0.67) and full["inference_macro_f1_sem"] == pytest.approx(0.01)
    assert full["inference_accuracy"] == pytest.approx(0.91)  # JSON holds both metrics
    assert full["best_val_macro_f1"] == pytest.approx(0.76)
    assert top["best_of"] == {"train.learning_rate": 1e-3}
    assert top["diff_to_full"] == pytest.approx(100 * (0.46 - 0.67))  # macro-F1 points
    assert [c["best_val_macro_f1"] for c in full["candidates"]] == pytest.approx([0.76, 0.61])


def test_best_of_by_accuracy_is_unchanged(known_runs):
    rows, stderr = compare_json(known_runs, "--best-of", "train.learning_rate")
    assert rows["full"]["best_of"] == {"train.learning_rate": 1e-4} and rows["full"]["metric"] == "accuracy"
    assert rows["top"]["diff_to_full"] == pytest.approx(100 * (0.62 - 0.71))
    assert [c["best_val_accuracy"] for c in rows["full"]["candidates"]] == pytest.approx([0.81, 0.79])
    assert rows["layerwise"]["inference_macro_f1"] is None and "skipped" not in stderr  # the old run, shown


def test_markdown_table_and_csv_show_the_chosen_metric(known_runs):
    args = ("--best-of", "train.learning_rate", "--metric", "macro_f1")
    markdown = ftcli("compare", known_runs, "--format", "markdown", *args).stdout
    header = markdown.splitlines()[0]
    assert "| best val macro-F1 |" in header and "| inference macro-F1 |" in header and "acc |" not in header
    assert "| best of (mean val macro-F1 per value) |" in header
    assert "learning_rate=0.0003 (of 2: val 0.6100/0.7600)" in markdown
    assert "| 0.6700 ± 0.0100 |" in markdown and "| -21.00 |" in markdown
    by_accuracy = ftcli("compare", known_runs, "--format", "markdown").stdout.splitlines()[0]
    assert "| best val acc |" in by_accuracy and "| inference acc |" in by_accuracy and "macro" not in by_accuracy
    table = ftcli("compare", known_runs, *args)
    assert table.exit_code == 0 and "macro-F1" in table.stdout and "0.6700 ± 0.0100" in table.stdout
    rows = {r["mode"]: r for r in csv.DictReader(io.StringIO(
        ftcli("compare", known_runs, "--format", "csv", *args).stdout))}
    assert float(rows["full"]["inference_macro_f1"]) == pytest.approx(0.67)
    assert float(rows["full"]["inference_accuracy"]) == pytest.approx(0.91)
    assert rows["top"]["metric"] == "macro_f1" and float(rows["top"]["diff_to_full"]) == pytest.approx(-21)


def test_sort_by_macro_f1(known_runs):
    result = ftcli("compare", known_runs, "--format", "json", "--sort", "inference_macro_f1", "--metric", "macro_f1")
    values = [r["inference_macro_f1"] for r in json.loads(result.stdout)]
    assert values == sorted(values, reverse=True) and len(values) == 4


def test_plot_draws_the_metric_and_a_confusion_matrix_per_run(known_runs, tmp_path):
    result = ftcli("compare", known_runs, "--metric", "macro_f1", "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert "macro_f1_vs_params_imdb.png" in written and "learning_curves_macro_f1_imdb.png" in written
    assert "accuracy_vs_params_imdb.png" not in written
    confusion = [n for n in written if n.startswith("confusion_")]
    assert confusion == sorted(f"confusion_mode-{m}_lr-{lr:g}_seed-{s}.png" for m, lr, s, *_ in KNOWN)
    assert all((tmp_path / "fig" / n).read_bytes().startswith(b"\x89PNG") for n in confusion)
    by_accuracy = ftcli("compare", known_runs, "--plot", tmp_path / "acc")
    assert by_accuracy.exit_code == 0, by_accuracy.output
    assert (tmp_path / "acc" / "accuracy_vs_params_imdb.png").exists()
    assert (tmp_path / "acc" / "learning_curves_imdb.png").exists()
    assert len(list((tmp_path / "acc").glob("confusion_*"))) == len(KNOWN)  # the old run recorded no matrix


def test_confusion_matrices_of_runs_with_the_same_folder_name_do_not_overwrite(known_runs, tmp_path):
    for sweep in ("a", "b"):
        shutil.copytree(known_runs / "mode=full_lr=0.0001_seed=0", tmp_path / "runs" / sweep / "run")
    result = ftcli("compare", tmp_path / "runs", "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "fig").glob("confusion_*")) == ["confusion_a_run.png",
                                                                             "confusion_b_run.png"]


def test_an_old_summary_without_the_new_fields_still_loads(known_runs):
    assert not set(NEW_FIELDS) & set(json.loads((known_runs / OLD / "summary.json").read_text()))
    outcome = read_run(known_runs / OLD).outcome
    assert outcome.test_scores.get("accuracy") == 0.65 and outcome.test_scores.get("macro_f1") is None
    assert outcome.test_confusion_matrix is None and outcome.select_metric is None


@pytest.mark.parametrize(("field", "value"), [
    ("test_confusion_matrix", [[1, 2], [3]]), ("test_confusion_matrix", [[1, 2], [3, "4"]]),
    ("inference_macro_f1", "0.5"), ("label_names", ["a", 1])])
def test_a_malformed_new_field_is_skipped_with_its_name(known_runs, tmp_path, field, value):
    folder = tmp_path / "runs" / "bad"
    shutil.copytree(known_runs / "mode=full_lr=0.0001_seed=0", folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, field: value}))
    with pytest.raises(ValueError, match=f"summary.json: {field}: got"):
        read_run(folder)


def test_metric_must_be_one_the_runs_record():
    result = ftcli("compare", "runs", "--metric", "loss")
    assert result.exit_code == 2 and "'loss' is not one of" in result.output


def test_a_run_without_optional_validation_fields_is_still_compared_by_accuracy(known_runs, tmp_path):
    folder = tmp_path / "runs" / "older"
    shutil.copytree(known_runs / OLD, folder)
    summary = json.loads((folder / "summary.json").read_text())
    del summary["best_val_accuracy"]
    (folder / "summary.json").write_text(json.dumps(summary))
    rows, stderr = compare_json(tmp_path / "runs")
    assert rows["layerwise"]["inference_accuracy"] == 0.65 and rows["layerwise"]["best_val_accuracy"] is None
    assert "skipped" not in stderr
