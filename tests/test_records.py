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
    assert run.outcome.test_scores.get("accuracy") == 0.5 and run.outcome.best_step == 3
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
    assert result.exit_code == 1 and "no completed runs found" in result.stderr
    (line,) = [s for s in result.stderr.splitlines() if "from_the_future" in s]
    assert line == (f"ftcli: skipped {folder}: summary.json: schema_version {SCHEMA_VERSION + 1} is newer than "
                    f"this ftcli reads ({SCHEMA_VERSION}); upgrade finetune-cli to read it")


def test_a_metrics_line_of_a_newer_schema_skips_its_run_with_the_line_number(tmp_path, fresh_run):
    folder = tmp_path / "runs" / "half_new"
    shutil.copytree(fresh_run, folder)
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    newer = json.dumps({**json.loads(lines[-1]), "schema_version": SCHEMA_VERSION + 1})
    (folder / "metrics.jsonl").write_text("\n".join([*lines[:-1], newer]) + "\n")
    result = ftcli("compare", tmp_path / "runs")
    assert result.exit_code == 1
    assert f"skipped {folder}: metrics.jsonl line {len(lines)}: schema_version {SCHEMA_VERSION + 1} is newer" \
        in result.stderr


def test_an_epoch_record_of_a_newer_schema_is_refused():
    with pytest.raises(RecordError, match="newer than this ftcli reads"):
        EpochRecord.from_json({"schema_version": SCHEMA_VERSION + 1, "epoch": 1, "train_loss": 0.1,
                               "val_loss": 0.1, "val_accuracy": 0.5})
    with pytest.raises(RecordError, match="not an evaluation record"):
        EpochRecord.from_json({"epoch": 1})
    for odd in (True, 0, "2", 1.5):
        with pytest.raises(RecordError, match="is not a version"):
            RunSummary.from_json({"schema_version": odd, "status": "completed"})


def test_a_checkpoint_written_before_records_had_a_version_resumes_to_the_uninterrupted_run(tmp_path):
    """A checkpoint of the unversioned format (its records are plain dicts without schema_version)
    resumes like a new one: the same records, the same trained tensors as a run never stopped."""
    import torch
    from helpers import tiny_config
    from safetensors import safe_open
    from safetensors.torch import save_file

    from finetune_cli.config import config_from_dict
    from finetune_cli.training.experiment import prepare_experiment
    from finetune_cli.training.loop import train

    def config():
        return prepare_experiment(config_from_dict(tiny_config("layerwise", train={"batch_size": 8, "epochs": 2})))

    whole = train(config(), lambda records: None)

    def die_after_epoch_1(records):
        raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train(config(), die_after_epoch_1, checkpoint=checkpoint)
    with safe_open(str(checkpoint), framework="pt") as f:
        meta = json.loads(f.metadata()["ftcli_checkpoint"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    assert meta["metrics"][0]["schema_version"] == SCHEMA_VERSION
    for record in [*meta["metrics"], meta["best"]]:
        del record["schema_version"]
    save_file(tensors, str(checkpoint), metadata={"ftcli_checkpoint": json.dumps(meta)})
    resumed = train(config(), lambda records: None, checkpoint=checkpoint, resume=True)
    timings = ("train_seconds", "train_examples_per_s")
    assert [{k: v for k, v in m.to_json().items() if k not in timings} for m in resumed.metrics] == \
        [{k: v for k, v in m.to_json().items() if k not in timings} for m in whole.metrics]
    assert resumed.best_state.keys() == whole.best_state.keys()
    assert all(torch.equal(resumed.best_state[n], whole.best_state[n]) for n in whole.best_state)


def test_compare_asks_the_runs_objective_which_metrics_it_has(tmp_path, fresh_run):
    from finetune_cli.data.objective import OBJECTIVES, SINGLE_LABEL
    from finetune_cli.runs.compare import COMPARE_METRICS

    assert ("auto", *dict.fromkeys(m for o in OBJECTIVES.values() for m in o.compare_metrics)) == COMPARE_METRICS
    assert set(SINGLE_LABEL.compare_metrics) < set(COMPARE_METRICS)
    folder = tmp_path / "runs" / "other_task"
    shutil.copytree(fresh_run, folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "task_type": "ranking"}))
    result = ftcli("compare", tmp_path / "runs")
    assert result.exit_code == 1
    assert f"skipped {folder}: task type 'ranking' is unknown to this ftcli; upgrade finetune-cli" in result.stderr
