"""Typed records on disk: summary.json and every metrics.jsonl line carry schema_version; they read
back into the same dataclasses; a run folder written before records had a version (the fixture
tests/fixtures/runs_v1, written by ftcli 0.1.0 before this change) still compares and plots; one
written by a newer ftcli is skipped with one line that says what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import ftcli, train_template_run

from finetune_cli.runs.read import read_run
from finetune_cli.runs.records import SCHEMA_VERSION, UNVERSIONED, EpochRecord, RecordError, RunSummary

V1_RUNS = Path(__file__).parent / "fixtures" / "runs_v1"


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory) -> Path:
    return train_template_run(tmp_path_factory.mktemp("records"))


def test_a_fresh_run_writes_versioned_records_that_read_back_unchanged(fresh_run):
    summary = json.loads((fresh_run / "summary.json").read_text())
    lines = [json.loads(line) for line in (fresh_run / "metrics.jsonl").read_text().splitlines()]
    assert next(iter(summary)) == "schema_version" and summary["schema_version"] == SCHEMA_VERSION
    assert lines and all(next(iter(r)) == "schema_version" and r["schema_version"] == SCHEMA_VERSION
                         for r in lines)
    assert RunSummary.from_json(summary).to_json() == summary
    assert [EpochRecord.from_json(r).to_json() for r in lines] == lines
    run = read_run(fresh_run)
    assert run.summary.schema_version == SCHEMA_VERSION and run.description.task_type == "single_label"
    assert run.metrics[-1].at_epoch_end and run.metrics[-1].value("accuracy") == lines[-1]["val_accuracy"]


def test_a_run_folder_of_the_unversioned_format_reads_as_version_1():
    run = read_run(V1_RUNS / "imdb_layerwise")
    assert run.summary.schema_version == UNVERSIONED and run.description.mode == "layerwise"
    assert run.description.task_type == "single_label"  # the one task type there was
    assert run.outcome.inference_accuracy == 0.5 and run.outcome.best_step == 3
    assert [(m.epoch, m.step, m.at_epoch_end) for m in run.metrics] == [
        (1, 3, False), (1, 4, True), (2, 6, False), (2, 8, True)]


def test_a_run_folder_of_the_unversioned_format_compares_and_plots(tmp_path):
    result = ftcli("compare", V1_RUNS, "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["name"], row["mode"], row["bottleneck"], row["inference_accuracy"]) == ("imdb_layerwise",
                                                                                     "layerwise", 8, 0.5)
    assert row["trainable_params"] == 2594 and "skipped" not in result.stderr
    result = ftcli("compare", V1_RUNS, "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "learning_curves_imdb.png").stat().st_size > 0
    assert (tmp_path / "fig" / "confusion_imdb_layerwise.png").stat().st_size > 0


def test_a_summary_of_a_newer_schema_is_skipped_with_one_line_that_says_what_to_do(tmp_path, fresh_run):
    folder = tmp_path / "runs" / "from_the_future"
    shutil.copytree(fresh_run, folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "schema_version": SCHEMA_VERSION + 1}))
    result = ftcli("compare", tmp_path / "runs")
    assert result.exit_code != 0 or "no completed runs" in result.output.lower()
    line = next(s for s in result.stderr.splitlines() if "from_the_future" in s)
    assert f"schema_version {SCHEMA_VERSION + 1} is newer than this ftcli reads" in line
    assert "upgrade finetune-cli" in line


def test_an_epoch_record_of_a_newer_schema_is_refused():
    with pytest.raises(RecordError, match="newer than this ftcli reads"):
        EpochRecord.from_json({"schema_version": SCHEMA_VERSION + 1, "epoch": 1, "train_loss": 0.1,
                               "val_loss": 0.1, "val_accuracy": 0.5})
    with pytest.raises(RecordError, match="not an evaluation record"):
        EpochRecord.from_json({"epoch": 1})
