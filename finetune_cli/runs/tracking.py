"""Experiment trackers (`train.report_to`): MLflow and TensorBoard record what the run folder records.

The run folder stays the record of truth; a tracker mirrors it into the tool people already watch:
the resolved config as parameters, one point per epoch for each metric of metrics.jsonl, the
summary's numbers at the end and, for MLflow, the run folder's small files as artifacts. Both
libraries are optional (`pip install -e '.[track]'`) and imported only when asked for.

MLflow follows its own conventions: MLFLOW_TRACKING_URI (MLflow's default store otherwise) and
MLFLOW_EXPERIMENT_NAME; without the latter, the experiment is named after the folder that holds the
run folder, so the runs of one sweep (RUNS/<sweep>/<run>) share an experiment and MLflow's compare
view works on them. A resumed run continues its MLflow run (its id is kept in the run folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, error_text
from .records import EpochRecord

log = logging.getLogger(__name__)

TRACKING_FILE = "tracking.json"  # {"mlflow_run_id": ...}: lets a resumed run continue its MLflow run
ARTIFACTS = ("config.yaml", "metrics.jsonl", "summary.json")  # small files; the weights stay in the folder


class Tracker(Protocol):
    def log_epoch(self, record: dict[str, Any]) -> None: ...  # one metrics.jsonl record

    def finish(self, summary: dict[str, Any]) -> None: ...  # the final summary.json


def check_trackers(names: Iterable[str]) -> None:
    """Before any data or model loads: each tracker's package (named as the tracker) is installed."""
    for name in names:
        _require(name)


class Trackers:
    """The trackers of one run. A tracker that fails, when it starts (an unusable store, a server
    that does not answer, a blocked folder) or while the run trains, costs a warning, not the run:
    the run folder remains the complete record."""

    def __init__(self, names: Iterable[str], folder: Path, config: dict[str, Any]):
        makers = {"mlflow": MlflowTracker, "tensorboard": TensorBoardTracker}
        self.trackers: list[Tracker] = []
        for name in names:
            try:
                self.trackers.append(makers[name](Path(folder), config))
            except Exception as e:  # noqa: BLE001 - any start-up failure is reported, the run goes on
                log.warning("train.report_to: %s could not start (%s); the run goes on without it",
                            name, error_text(e))

    def log_epoch(self, record: EpochRecord) -> None:
        """Called with each evaluation's record as it is written to metrics.jsonl."""
        for tracker in self.trackers:
            self._guarded(tracker.log_epoch, record.to_json())

    def finish(self, summary: dict[str, Any]) -> None:
        for tracker in self.trackers:
            self._guarded(tracker.finish, summary)
        self.trackers = []

    @staticmethod
    def _guarded(call, value) -> None:
        try:
            call(value)
        except Exception as e:  # noqa: BLE001 - any tracker failure is reported, the run goes on
            log.warning("train.report_to: %s failed: %s", type(call.__self__).__name__, error_text(e))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}: the dotted keys of --set and sweeps."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def numbers(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric fields of a record (what trackers plot); booleans and text left out."""
    return {k: float(v) for k, v in record.items() if k != "schema_version"
            and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def step_of(record: dict[str, Any]) -> int:
    """The x of a metrics record: its optimizer step (records before steps were recorded: the epoch)."""
    return int(record.get("step", record["epoch"]))


def _require(package: str) -> None:
    """A one-line error when an optional tracker library is missing (checked before importing it)."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"train.report_to: {package} is not installed; "
                          "pip install -e '.[track]' (or remove it from train.report_to)")


# While a tracker starts, a server that does not answer is a warning in seconds, not after MLflow's own
# 7 retries with backoff (minutes); values the user set are kept, and mid-run requests retry as MLflow does.
QUICK_START = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextlib.contextmanager
def quick_requests():
    unset = [k for k in QUICK_START if k not in os.environ]
    os.environ.update({k: QUICK_START[k] for k in unset})
    try:
        yield
    finally:
        for key in unset:
            os.environ.pop(key, None)


class MlflowTracker:
    """One MLflow run per ftcli run, continued on resume."""

    def __init__(self, folder: Path, config: dict[str, Any]):
        _require("mlflow")
        import mlflow  # here: MLflow takes seconds to import and only this tracker needs it

        self.mlflow = mlflow
        self.folder = folder
        client_run = self._resume_id()
        with quick_requests():
            self.mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or folder.parent.name)
            self.run = self.mlflow.start_run(run_id=client_run, run_name=None if client_run else folder.name)
        try:
            (folder / TRACKING_FILE).write_text(json.dumps({"mlflow_run_id": self.run.info.run_id}))
            if client_run is None:
                self.mlflow.log_params(flatten(config))
        except BaseException:  # half started: end it, or the next run of this process (a sweep) cannot start
            self.mlflow.end_run(status="FAILED")
            raise

    def _resume_id(self) -> str | None:
        try:
            return json.loads((self.folder / TRACKING_FILE).read_text()).get("mlflow_run_id")
        except (OSError, ValueError, AttributeError):
            return None

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(numbers(record), step=step_of(record))

    def finish(self, summary: dict[str, Any]) -> None:
        self.mlflow.log_metrics({f"final_{k}": v for k, v in numbers(summary).items()})
        for name in ARTIFACTS:
            if (self.folder / name).exists():
                self.mlflow.log_artifact(str(self.folder / name))
        ended = {"completed": "FINISHED", "interrupted": "KILLED", "pruned": "KILLED"}  # pruned: stopped by ftcli tune
        status = ended.get(summary.get("status"), "FAILED")
        self.mlflow.set_tag("ftcli.status", str(summary.get("status")))
        self.mlflow.end_run(status=status)


class TensorBoardTracker:
    """Event files in the run folder's `tensorboard/` (`tensorboard --logdir RUNS`)."""

    def __init__(self, folder: Path, config: dict[str, Any]):
        _require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
        try:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in flatten(config).items()))
        except BaseException:
            self.writer.close()
            raise

    def log_epoch(self, record: dict[str, Any]) -> None:
        for key, value in numbers(record).items():
            if key not in ("epoch", "step"):
                self.writer.add_scalar(key, value, global_step=step_of(record))
        self.writer.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        for key, value in numbers(summary).items():
            self.writer.add_scalar(f"final/{key}", value, global_step=int(summary.get("best_step") or 0))
        self.writer.close()
