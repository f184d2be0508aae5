"""What each CLI command does, as plain functions (the CLI only parses and renders): training one
run and recording it (how it ended included), resuming, predicting with several runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, config_to_dict, default_run_name, read_yaml
from ..data.files import read_json_rows
from ..data.load import unicode_problem
from ..errors import ConfigError, DataError, FtcliError, short_repr
from ..methods.registry import MODES
from ..runs.artifacts import load_run_model, predict, share_frozen
from ..runs.compare import normalized
from ..runs.folder import CONFIG_FILE, WEIGHTS_FILE, RunFolder, check_writable, library_versions, read_summary
from ..runs.tracking import Trackers
from ..training import memory
from ..training.checkpoint import CHECKPOINT_FILE
from ..training.loop import Experiment, distributed_state, evaluate, prepare_experiment, train

log = logging.getLogger(__name__)


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key where two nested mappings differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".")


def train_from_config(cfg: RunConfig, config_path: Path, runs_dir: Path, overwrite: bool, console,
                      resume: bool = False) -> RunSummary:
    """Run a config into runs_dir/NAME. Refuses to overwrite silently; `resume` continues an
    interrupted run from its last epoch checkpoint (a completed run is left as it is)."""
    path = Path(runs_dir) / default_run_name(cfg, config_path)
    enabled = distributed_state().is_main_process
    if enabled:
        check_writable(path, "--runs-dir")  # fail before minutes of loading, not after
    if resume and (path / CONFIG_FILE).exists():
        key = first_difference(config_to_dict(cfg), normalized(read_yaml(path / CONFIG_FILE)))
        if key is not None:
            raise ConfigError(f"{key}: differs from the config recorded in {path}; "
                              "resume with the same config, or start a new run with --name")
        summary = read_summary(path)
        if summary.get("status") == "completed":
            log.info("%s is already completed; nothing to resume", path)
            return RunSummary.from_json(summary)
        return run_and_record(cfg, RunFolder(path, enabled), console, resume=True)
    if enabled:
        RunFolder.check_free(path, overwrite)  # fail before minutes of loading, not after
    exp = prepare_experiment(cfg)  # data or model errors leave no folder behind
    folder = RunFolder.create(runs_dir, path.name, overwrite, enabled=enabled)
    return run_and_record(cfg, folder, console, exp=exp)


def read_inputs(texts: list[str], pairs: list[str], file: Path | None) -> list[dict]:
    """Inputs to predict: `--text` (with `--pair` for sentence-pair tasks) or a JSON Lines file."""
    rows = [{"text": t} for t in texts]
    if pairs:
        if len(pairs) != len(texts):
            raise ConfigError("--pair: give one --pair per --text (first text = --text, second = --pair)")
        for row, pair in zip(rows, pairs, strict=True):
            row["pair"] = pair
    if file is not None:
        rows += read_json_rows(file)
    if not rows:
        raise ConfigError("predict: nothing to predict; give --text or --file")
    return rows


def task_inputs(row: dict, fields: tuple[str, ...]) -> dict:
    """A row's texts under a run's text columns: its own columns when it has them all, else `text`
    (and `pair`) in order, as --text/--pair give them, so one input reaches runs of any task."""
    if all(f in row for f in fields):
        return row
    positional = [row.get("text"), row.get("pair")]
    return {**row, **{f: v for f, v in zip(fields, positional, strict=False) if f not in row and v is not None}}


@dataclass(frozen=True)
class Predictions:
    """What `ftcli predict` prints: one JSON-ready prediction per (input row, run), and the bytes."""

    rows: list[dict[str, Any]]  # index, run, label, label_id, probabilities; by index, then run
    run_bytes: dict[str, int]  # run folder name -> size of its trained file, in the order given
    full_model_bytes: int  # one full copy of the model
    shared_bytes_saved: int  # frozen tensors held once in memory instead of once per run


def predict_runs(run_dirs: list[Path], rows: list[dict]) -> Predictions:
    """Load every run into one process (frozen backbone tensors shared) and predict.

    A row with a `run` field goes to that run (folder name) only; other rows go to every run.
    """
    names = [Path(p).name for p in run_dirs]
    if len(set(names)) != len(names):
        raise ConfigError("predict: two runs have the same folder name; rename one")
    for i, row in enumerate(rows, start=1):
        if not isinstance(row.get("run", ""), str):
            raise DataError(f"input row {i}: run: expected the name of a run folder, got {short_repr(row['run'])}")
    unknown = {row["run"] for row in rows if "run" in row} - set(names)
    if unknown:
        raise ConfigError(f"predict: rows name runs that were not given: {', '.join(sorted(unknown))}")
    runs = [load_run_model(p) for p in run_dirs]
    saved = share_frozen(runs)
    out: list[dict] = []
    for run in runs:
        selected = [(i, task_inputs(row, run.text_fields)) for i, row in enumerate(rows)
                    if row.get("run", run.path.name) == run.path.name]
        for i, row in selected:
            missing = [f for f in run.text_fields if not isinstance(row.get(f), str)]
            if missing:
                raise DataError(f"input row {i + 1}: run {run.path.name} ({run.spec.name}) needs "
                                f"{', '.join(run.text_fields)}; missing {', '.join(missing)}")
            for field in run.text_fields:
                if unicode_problem(row[field]):
                    raise DataError(f"input row {i + 1}: {field!r} {unicode_problem(row[field])}")
        preds = predict(run, [row for _, row in selected])
        out += [{"index": i, "run": run.path.name, **p} for (i, _), p in zip(selected, preds, strict=True)]
    return Predictions(rows=sorted(out, key=lambda p: (p["index"], p["run"])),
                       run_bytes={r.path.name: (r.path / WEIGHTS_FILE).stat().st_size for r in runs},
                       full_model_bytes=sum(p.numel() * p.element_size() for p in runs[0].model.parameters()),
                       shared_bytes_saved=saved)


@dataclass(frozen=True)
class RunDescription:
    """What a run is, known before training: the first half of its summary.json."""

    dataset: str
    mode: str
    bottleneck: int | None  # for the modes sized by method.bottleneck
    model: str
    backbone_sha256: str
    trainable_params: int
    total_params: int
    backbone_params: int
    trainable_pct: float
    seed: int
    epochs: int
    data_source: str
    data_sizes: dict[str, int]
    label_names: list[str]  # label id i is label_names[i] (inferred from train when not configured)
    data_notes: list[str]  # what was done to the source: rows without a gold label dropped, splits carved
    data_cache: dict[str, str]  # checked rows (Arrow sources) and tokenized splits: hit | miss | off
    versions: dict[str, str]


@dataclass(frozen=True)
class RunOutcome:
    """What a completed run measured: the second half of its summary.json."""

    select_metric: str | None  # what picked the best evaluation on validation (None: recorded before it existed)
    best_epoch: int  # the epoch of the best evaluation (in progress, for a mid-epoch one)
    best_step: int | None  # its optimizer step (None: a run recorded before evaluations had steps)
    epochs_completed: int  # fewer than `epochs` when train.early_stopping_patience stopped the run
    best_val_loss: float
    best_val_accuracy: float
    best_val_macro_f1: float | None  # None in runs recorded before macro-F1 was measured (and below)
    inference_accuracy: float  # on the test split, of the model reloaded from the run folder
    inference_macro_f1: float | None  # the same model and split
    test_loss: float
    test_per_class: list[dict[str, Any]] | None  # {precision, recall, f1, support} per label, label_names order
    test_confusion_matrix: list[list[int]] | None  # [true label][predicted label] -> test examples
    train_seconds: float
    train_examples_per_s: float
    wall_seconds: float
    peak_memory_mb: float
    peak_memory_method: str
    device: str
    num_processes: int
    trained_file_bytes: int
    pad_ratio: float
    cached_features: str | None


@dataclass(frozen=True)
class RunSummary:
    """A run's summary.json: `running` (description only), then `completed` (with its outcome), or
    `interrupted` / `failed` (with the error)."""

    name: str
    status: str
    description: RunDescription
    outcome: RunOutcome | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """summary.json: one flat mapping, keys in this order."""
        out = {"name": self.name, "status": self.status, **dataclasses.asdict(self.description)}
        if self.outcome is not None:
            out.update(dataclasses.asdict(self.outcome))
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """A summary read back from disk (a field it lacks is None)."""
        def part(kind: type) -> Any:
            return kind(**{f.name: data.get(f.name) for f in dataclasses.fields(kind)})

        outcome = part(RunOutcome) if data.get("status") == "completed" else None
        return cls(data.get("name"), data.get("status"), part(RunDescription), outcome, data.get("error"))


def describe(exp: Experiment) -> RunDescription:
    """What the run is, known before training: the first half of its summary."""
    method = exp.cfg.method
    return RunDescription(
        dataset=exp.spec.name, mode=method.mode,
        bottleneck=method.bottleneck if MODES[method.mode].sized_by_bottleneck else None,
        model=exp.backbone.name, backbone_sha256=exp.backbone.sha256,
        trainable_params=exp.counts.trainable, total_params=exp.counts.total,
        backbone_params=exp.counts.backbone, trainable_pct=exp.counts.trainable_pct,
        seed=exp.cfg.seed, epochs=exp.cfg.train.epochs, data_source=exp.data.source,
        data_sizes=exp.data.sizes(), label_names=list(exp.spec.label_names), data_notes=list(exp.data.notes),
        data_cache={"checked": exp.data.cache, "tokenized": cache_state(e.cache for e in exp.encoded.values())},
        versions=library_versions(),
    )


def cache_state(states) -> str:
    """hit when every part was read from the cache, off when none could be, else miss."""
    states = set(states)
    return "off" if states == {"off"} else "hit" if states == {"hit"} else "miss"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (e.g. a scheduler killing the job) ends the run like Ctrl-C: marked `interrupted`."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_and_record(cfg: RunConfig, folder: RunFolder, console=None, resume: bool = False,
                   exp: Experiment | None = None) -> RunSummary:
    """Train and test one config (prepared as `exp`, or here), recording everything in `folder`.

    Once the summary says `running`, every way out but kill -9 records how the run ended:
    `completed`, `interrupted` (Ctrl-C, SIGTERM) or `failed` (any error, e.g. a full disk).
    """
    exp = exp or prepare_experiment(cfg)
    folder.write_config(config_to_dict(cfg))
    summary = RunSummary(folder.path.name, "running", describe(exp))
    if console is not None and folder.enabled:
        console.print(exp.counts.line())
    trackers = Trackers(cfg.train.report_to if folder.enabled else (), folder.path, config_to_dict(cfg))
    with sigterm_as_interrupt():
        try:
            folder.write_summary(summary.to_json())
            summary = train_and_test(exp, folder, summary, console, resume, trackers)
        except (KeyboardInterrupt, Exception) as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            ended = dataclasses.replace(summary, status=status, error=str(e) or e.__class__.__name__)
            record_end(folder, ended)
            trackers.finish(ended.to_json())
            raise
    folder.remove(CHECKPOINT_FILE)  # the run is complete: the trained file is all that is needed
    trackers.finish(summary.to_json())
    return summary


def train_and_test(exp: Experiment, folder: RunFolder, summary: RunSummary, console, resume: bool,
                   trackers: Trackers) -> RunSummary:
    """Train, save the best epoch, and test it; returns the completed summary (also written).

    The test metrics (inference accuracy, macro-F1, per class, confusion matrix) are measured on the
    model rebuilt from the run folder (backbone + trained.safetensors): they describe the saved artifact.
    """
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_was_reset = memory.reset_peak(device)  # this run's peak, not the sweep process's
    def record_epoch(records: list[dict]) -> None:
        folder.write_metrics(records)
        trackers.log_epoch(records)

    out = train(exp, record_epoch, console, folder.path / CHECKPOINT_FILE, resume)
    # The checkpoint is written before metrics.jsonl and holds every epoch's record: a kill between
    # the two in the last epoch leaves nothing for a resumed loop to do, so the file is rewritten here.
    folder.write_metrics(out.metrics)
    peak_memory, peak_memory_method = memory.peak_mb(device, peak_was_reset)  # before a reloaded copy exists
    size = folder.save_trained(out.best_state, {"backbone_sha256": exp.backbone.sha256,
                                                "model": exp.backbone.name, "mode": exp.cfg.method.mode,
                                                "label_names": json.dumps(list(exp.spec.label_names))})
    out.accelerator.wait_for_everyone()
    reloaded = load_run_model(folder.path).model.to(out.accelerator.device)
    test = evaluate(reloaded, out.test_loader, out.accelerator)
    outcome = RunOutcome(
        select_metric=exp.cfg.train.select_metric,
        best_epoch=out.best["epoch"], best_step=out.best.get("step"), epochs_completed=out.epochs_completed,
        best_val_loss=out.best["val_loss"], best_val_accuracy=out.best["val_accuracy"],
        best_val_macro_f1=out.best.get("val_macro_f1"),  # absent: best kept from a checkpoint of an older ftcli
        inference_accuracy=test.accuracy, inference_macro_f1=test.macro_f1, test_loss=test.loss,
        test_per_class=test.per_class_json(), test_confusion_matrix=test.confusion_matrix,
        train_seconds=out.train_seconds,
        train_examples_per_s=out.train_examples_per_s, wall_seconds=time.time() - started,
        peak_memory_mb=peak_memory, peak_memory_method=peak_memory_method, device=out.device,
        num_processes=out.num_processes, trained_file_bytes=size, pad_ratio=out.pad_ratio,
        cached_features=out.cached_features,
    )
    summary = dataclasses.replace(summary, status="completed", outcome=outcome)
    folder.write_summary(summary.to_json())
    return summary


def record_end(folder: RunFolder, summary: RunSummary) -> None:
    """Write the summary of a run that stopped; on a full disk even this may fail, which must not
    hide the error that stopped the run."""
    try:
        folder.write_summary(summary.to_json())
    except (FtcliError, OSError) as e:
        log.warning("%s: could not record status %r (%s)", folder.path, summary.status, e)
