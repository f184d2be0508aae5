"""train.report_to: MLflow and TensorBoard record the run; read back with each library's own reader."""

from __future__ import annotations

import json

import pytest
from helpers import CONFIGS, ftcli

from finetune_cli.runs.tracking import MlflowTracker, TensorBoardTracker, flatten

CONFIG = {"model": {"name": "tiny-random-bert"}, "method": {"mode": "lora", "lora": {"target_modules": ("query",)}},
          "train": {"epochs": 2, "learning_rate": 1e-3}, "seed": 0}
EPOCHS = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.5, "pad_ratio": 1.1},
          {"epoch": 2, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.75, "pad_ratio": 1.1}]
SUMMARY = {"status": "completed", "best_epoch": 2, "inference_accuracy": 0.7, "trainable_params": 2114,
           "mode": "lora", "error": None, "cached": False}


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow keeps artifacts in ./mlruns of the working folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(None)  # MLflow reads the variable again
    return mlflow


def run_folder(tmp_path, sweep="my_sweep", name="seed=0"):
    folder = tmp_path / "runs" / sweep / name
    folder.mkdir(parents=True)
    for file in ("config.yaml", "metrics.jsonl", "summary.json"):
        (folder / file).write_text("{}\n")
    return folder


def test_mlflow_run_per_ftcli_run_in_the_sweeps_experiment(tmp_path, mlflow_store):
    folder = run_folder(tmp_path)
    tracker = MlflowTracker(folder, CONFIG)
    for record in EPOCHS:
        tracker.log_epoch(record)
    tracker.finish(SUMMARY)
    client = mlflow_store.MlflowClient()
    experiment = client.get_experiment_by_name("my_sweep")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "seed=0" and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["method.lora.target_modules"] == "['query']"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.75)]
    assert run.data.metrics["final_inference_accuracy"] == 0.7 and "final_error" not in run.data.metrics
    assert run.data.tags["ftcli.status"] == "completed"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "config.yaml", "metrics.jsonl", "summary.json"]


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, mlflow_store):
    folder = run_folder(tmp_path)
    first = MlflowTracker(folder, CONFIG)
    first.log_epoch(EPOCHS[0])
    first.finish({**SUMMARY, "status": "interrupted"})
    second = MlflowTracker(folder, CONFIG)
    second.log_epoch(EPOCHS[1])
    second.finish(SUMMARY)
    assert second.run.info.run_id == first.run.info.run_id
    assert json.loads((folder / "tracking.json").read_text()) == {"mlflow_run_id": first.run.info.run_id}
    client = mlflow_store.MlflowClient()
    run = client.get_run(first.run.info.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]


def test_mlflow_experiment_name_from_mlflows_own_variable(tmp_path, mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    tracker = MlflowTracker(run_folder(tmp_path), CONFIG)
    tracker.finish(SUMMARY)
    assert mlflow_store.MlflowClient().get_experiment_by_name("mine") is not None


def test_tensorboard_event_files_in_the_run_folder(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run_folder(tmp_path)
    tracker = TensorBoardTracker(folder, CONFIG)
    for record in EPOCHS:
        tracker.log_epoch(record)
    tracker.finish(SUMMARY)
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    assert [(s.step, s.value) for s in events.Scalars("val_accuracy")] == [(1, 0.5), (2, 0.75)]
    assert events.Scalars("final/inference_accuracy")[0].value == pytest.approx(0.7)
    assert "epoch" not in events.Tags()["scalars"]


def test_flatten_gives_the_dotted_keys_of_set():
    assert flatten(CONFIG) == {"model.name": "tiny-random-bert", "method.mode": "lora",
                               "method.lora.target_modules": ["query"], "train.epochs": 2,
                               "train.learning_rate": 1e-3, "seed": 0}


def test_a_sweep_reports_to_mlflow_and_tensorboard_through_the_cli(tmp_path, mlflow_store):
    """End to end: every run of a sweep is an MLflow run of the sweep's experiment, with its epochs,
    and has TensorBoard events in its folder; read back with each library's own reader."""
    pytest.importorskip("tensorboard")
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": str(CONFIGS / "smoke" / "top.yaml"), "name": "tracked",
        "set": {"data.max_train_samples": 32, "data.max_eval_samples": 16, "train.epochs": 2,
                "train.report_to": ["mlflow", "tensorboard"]},
        "grid": {"seed": [0, 1]}}))
    result = ftcli("sweep", sweep, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    client = mlflow_store.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["seed=0", "seed=1"]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.params["method.mode"] == "top"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [2, 4]  # steps
        folder = tmp_path / "runs" / "tracked" / run.info.run_name
        summary = json.loads((folder / "summary.json").read_text())
        assert run.data.metrics["final_inference_accuracy"] == pytest.approx(summary["inference_accuracy"])
        events = EventAccumulator(str(folder / "tensorboard"))
        events.Reload()
        assert [s.step for s in events.Scalars("val_accuracy")] == [2, 4]


@pytest.mark.parametrize("uri", ["sqlite:////proc/nope/mlflow.db", "file:///tmp/mlruns-ftcli-test",
                                 "http://127.0.0.1:9"], ids=["unusable_sqlite", "file_store", "no_server"])
def test_a_tracker_that_cannot_start_costs_a_warning_not_the_run(tmp_path, mlflow_store, monkeypatch, uri):
    """#24.3: these used to end in a traceback and a folder with only config.yaml (which the next
    identical command then refused)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow_store.set_tracking_uri(None)
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path / "runs", "--set",
                   "train.report_to=[mlflow]", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    assert "train.report_to: mlflow could not start (" in result.output
    assert "the run goes on without it" in result.output
    assert json.loads((tmp_path / "runs" / "top" / "summary.json").read_text())["status"] == "completed"


def test_a_blocked_tensorboard_folder_on_resume_is_a_warning_and_the_run_ends_recorded(tmp_path):
    pytest.importorskip("tensorboard")
    runs = tmp_path / "runs"
    args = ["train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", runs, "--set", "train.report_to=[tensorboard]",
            "--set", "train.epochs=1"]
    assert ftcli(*args).exit_code == 0
    summary = runs / "top" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "interrupted"}))
    import shutil

    shutil.rmtree(runs / "top" / "tensorboard")
    (runs / "top" / "tensorboard").write_text("a file where the event folder goes")
    resumed = ftcli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "tensorboard could not start" in resumed.output
    assert json.loads(summary.read_text())["status"] != "running"


def test_a_missing_tracker_package_is_one_line_before_anything_loads(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path / "runs", "--set",
                   "train.report_to=[mlflow]")
    assert result.exit_code == 2 and "train.report_to: mlflow is not installed" in result.output
    assert not (tmp_path / "runs").exists()
