"""`ftcli train`: one run trained, tested and recorded in its folder (how it ended included), or
resumed from its checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, config_to_dict, default_run_name
from ..config_yaml import read_yaml
from ..data.balance import collapse_warning
from ..errors import ConfigError, FtcliError
from ..methods.registry import METHODS
from ..runs.artifacts import load_run_model, with_precision
from ..runs.compare import normalized
from ..runs.folder import CONFIG_FILE, RunFolder, check_writable, library_versions, read_summary
from ..runs.records import EpochRecord, RunDescription, RunOutcome, RunSummary
from ..runs.tracking import Trackers, check_trackers
from ..training import memory
from ..training.checkpoint import CHECKPOINT_FILE
from ..training.devices import distributed_state
from ..training.evaluate import evaluate
from ..training.experiment import Experiment, prepare_experiment
from ..training.loop import train

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


def recorded_difference(cfg: RunConfig, path: Path) -> str | None:
    """The first dotted key where `cfg` differs from the config recorded in the run folder `path`
    (None: the same setting, `auto` values and defaults added since taken into account)."""
    recorded = read_summary(path)
    task_type = recorded.get("task_type") or "single_label"  # recorded before task types: single
    model_type = recorded.get("model_type")  # recorded since schema 4
    # an `auto` resolves as the run resolved it (the same folder: the same data and method); the
    # select_metric is known once the run completed, the learning rate from its start (schema 5)
    autos = {key: recorded.get(key) for key in ("select_metric", "learning_rate", "mixed_precision")}
    return first_difference(normalized(config_to_dict(cfg), task_type, model_type, autos),
                            normalized(read_yaml(path / CONFIG_FILE), task_type, model_type, autos))


class RunPruned(Exception):
    """Raised by an observer (ftcli tune's pruner) to stop a run early: recorded as `pruned`."""


Observer = Callable[[str, EpochRecord], None]  # (the resolved select_metric, the newest evaluation)


def train_from_config(cfg: RunConfig, config_path: Path, runs_dir: Path, overwrite: bool, console,
                      resume: bool = False, observer: Observer | None = None) -> RunSummary:
    """Run a config into runs_dir/NAME. Refuses to overwrite silently; `resume` continues an
    interrupted run from its last epoch checkpoint (a completed run is left as it is). `observer`
    sees every evaluation and may stop the run by raising RunPruned."""
    path = Path(runs_dir) / default_run_name(cfg, config_path)
    check_trackers(cfg.train.report_to)  # a missing tracker package: one line before minutes of loading
    enabled = distributed_state().is_main_process
    if enabled:
        check_writable(path, "--runs-dir")  # fail before minutes of loading, not after
    if resume and (path / CONFIG_FILE).exists():
        key = recorded_difference(cfg, path)
        if key is not None:
            raise ConfigError(f"{key}: differs from the config recorded in {path}; "
                              "resume with the same config, or start a new run with --name")
        summary = RunSummary.from_json(read_summary(path), str(path))
        if summary.status == "completed":
            log.info("%s is already completed; nothing to resume", path)
            return summary
        # a resumed run keeps the precision it started in (auto on other hardware could pick another)
        cfg = with_precision(cfg, summary.description.mixed_precision)
        return run_and_record(cfg, RunFolder(path, enabled), console, resume=True, observer=observer)
    if enabled:
        RunFolder.check_free(path, overwrite)  # fail before minutes of loading, not after
    exp = prepare_experiment(cfg)  # data or model errors leave no folder behind
    folder = RunFolder.create(runs_dir, path.name, overwrite, enabled=enabled)
    return run_and_record(cfg, folder, console, exp=exp, observer=observer)


def describe(exp: Experiment) -> RunDescription:
    """What the run is, known before training: the first half of its summary."""
    method = exp.cfg.method
    return RunDescription(
        dataset=exp.spec.name, mode=method.mode,
        bottleneck=method.bottleneck if METHODS[method.mode].sized_by_bottleneck else None,
        model=exp.backbone.name, backbone_sha256=exp.backbone.sha256,
        trainable_params=exp.counts.trainable, total_params=exp.counts.total,
        backbone_params=exp.counts.backbone, trainable_pct=exp.counts.trainable_pct,
        seed=exp.cfg.seed, epochs=exp.cfg.train.epochs, data_source=exp.data.source,
        data_sizes=exp.data.sizes(), label_names=list(exp.spec.label_names), data_notes=list(exp.data.notes),
        data_cache={"checked": exp.data.cache, "tokenized": cache_state(e.cache for e in exp.encoded.values())},
        versions=library_versions(), task_type=exp.objective.name, model_type=exp.backbone.model_type,
        layout=exp.backbone.layout, targets=exp.targets, learning_rate=exp.cfg.train.learning_rate,
        mixed_precision=exp.cfg.train.mixed_precision,
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
                   exp: Experiment | None = None, observer: Observer | None = None) -> RunSummary:
    """Train and test one config (prepared as `exp`, or here), recording everything in `folder`.

    Once the summary says `running`, every way out but kill -9 records how the run ended:
    `completed`, `interrupted` (Ctrl-C, SIGTERM) or `failed` (any error, e.g. a full disk).
    """
    exp = exp or prepare_experiment(cfg)
    folder.write_config(config_to_dict(cfg))
    summary = RunSummary(folder.path.name, "running", describe(exp))
    if console is not None and folder.enabled:
        console.print(exp.counts.line())
    # the trackers get the resolved config (a learning rate, not `auto`): numbers they can sort and plot
    trackers = Trackers(cfg.train.report_to if folder.enabled else (), folder.path, config_to_dict(exp.cfg))
    with sigterm_as_interrupt():
        try:
            folder.write_summary(summary.to_json())
            summary = train_and_test(exp, folder, summary, console, resume, trackers, observer)
        except (KeyboardInterrupt, Exception) as e:
            status = {KeyboardInterrupt: "interrupted", RunPruned: "pruned"}.get(type(e), "failed")
            ended = dataclasses.replace(summary, status=status, error=str(e) or e.__class__.__name__)
            record_end(folder, ended)
            trackers.finish(ended.to_json())
            raise
    folder.remove(CHECKPOINT_FILE)  # the run is complete: the trained file is all that is needed
    trackers.finish(summary.to_json())
    return summary


def train_and_test(exp: Experiment, folder: RunFolder, summary: RunSummary, console, resume: bool,
                   trackers: Trackers, observer: Observer | None = None) -> RunSummary:
    """Train, save the best epoch, and test it; returns the completed summary (also written).

    The test metrics (inference accuracy, macro-F1, per class, confusion matrix) are measured on the
    model rebuilt from the run folder (backbone + trained.safetensors): they describe the saved artifact.
    """
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_was_reset = memory.reset_peak(device)  # this run's peak, not the sweep process's
    def record_epoch(records: list[EpochRecord]) -> None:
        folder.write_metrics(records)
        trackers.log_epoch(records[-1])
        if observer is not None:
            observer(exp.cfg.train.select_metric, records[-1])

    out = train(exp, record_epoch, console, folder.path / CHECKPOINT_FILE, resume)
    # The checkpoint is written before metrics.jsonl (unless it fails: then the record is written and
    # the run fails) and holds every epoch's record: a kill between the two in the last epoch leaves
    # nothing for a resumed loop to do, so the file is rewritten here.
    folder.write_metrics(out.metrics)
    peak_memory, peak_memory_method = memory.peak_mb(device, peak_was_reset)  # before a reloaded copy exists
    size = folder.save_trained(out.best_state, {"backbone_sha256": exp.backbone.sha256,
                                                "model": exp.backbone.name, "mode": exp.cfg.method.mode,
                                                "label_names": json.dumps(list(exp.spec.label_names)),
                                                "task_type": exp.objective.name})
    out.accelerator.wait_for_everyone()
    reloaded = load_run_model(folder.path).model.to(out.accelerator.device)
    test = evaluate(reloaded, out.test_loader, out.accelerator, exp.objective)
    outcome = RunOutcome(
        select_metric=exp.cfg.train.select_metric,
        best_epoch=out.best.epoch, best_step=out.best.step, epochs_completed=out.epochs_completed,
        best_val_loss=out.best.val_loss, best_val_scores=dict(out.best.val_scores),
        test_scores=dict(test.scores), test_loss=test.loss,
        test_per_class=test.per_class_json(), test_confusion_matrix=test.confusion_matrix,
        train_seconds=out.train_seconds,
        train_examples_per_s=out.train_examples_per_s, wall_seconds=time.time() - started,
        peak_memory_mb=peak_memory, peak_memory_method=peak_memory_method, device=out.device,
        num_processes=out.num_processes, trained_file_bytes=size, pad_ratio=out.pad_ratio,
        cached_features=out.cached_features, warnings=kept_model_warnings(exp, out.best),
    )
    summary = dataclasses.replace(summary, status="completed", outcome=outcome)
    folder.write_summary(summary.to_json())
    return summary


def kept_model_warnings(exp: Experiment, best: EpochRecord) -> list[str] | None:
    """What looks wrong with the kept model on validation (logged too), or None: a task with classes
    whose model predicts one class, or misses the rare ones (data/balance.py)."""
    if not exp.objective.has_classes:
        return None
    found = collapse_warning(best.val_confusion_matrix, best.val_scores.get("accuracy"),
                             best.val_scores.get("macro_f1"), exp.spec.label_names)
    if found is None:
        return None
    log.warning("%s", found)
    return [found]


def record_end(folder: RunFolder, summary: RunSummary) -> None:
    """Write the summary of a run that stopped; on a full disk even this may fail, which must not
    hide the error that stopped the run."""
    try:
        folder.write_summary(summary.to_json())
    except (FtcliError, OSError) as e:
        log.warning("%s: could not record status %r (%s)", folder.path, summary.status, e)
