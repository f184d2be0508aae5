"""Run folders read back for comparing and plotting: a completed run's summary, config and
evaluation records, checked and turned into typed records (records.py); a folder that is not a
completed run, or whose records are broken or newer than this ftcli, is skipped with the reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config_yaml import safe_load
from ..errors import FtcliError, error_text, short_repr
from .folder import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from .records import VAL_PARTS, EpochRecord, RecordError, RunDescription, RunOutcome, RunSummary


@dataclass(frozen=True)
class Run:
    """A completed run read back from its folder."""

    path: Path
    summary: RunSummary  # its summary.json (completed: it has an outcome)
    config: dict  # its config.yaml, as recorded (compare.normalized fills in today's defaults)
    metrics: list[EpochRecord]  # its metrics.jsonl, one record per evaluation

    @property
    def description(self) -> RunDescription:
        return self.summary.description

    @property
    def outcome(self) -> RunOutcome:
        return self.summary.outcome  # type: ignore[return-value]  # read_run keeps completed runs only

    def field(self, name: str) -> Any:
        """A summary field by name (compare's generic columns and statistics)."""
        part = self.outcome if hasattr(self.outcome, name) else self.description
        return getattr(part, name)


NUMBER, INTEGER, TEXT = "a number", "an integer", "a string"
POSITIVE, SIZES = "a positive integer", "a mapping of train, validation and test to integers"
TEXTS, MATRIX = "a list of strings", "a square list of lists of integers"
SUMMARY_FIELDS = {  # what comparing and plotting read from a completed run's summary.json
    "dataset": TEXT, "mode": TEXT, "model": TEXT, "data_source": TEXT, "seed": INTEGER, "epochs": INTEGER,
    "trainable_params": INTEGER, "backbone_params": POSITIVE, "trainable_pct": NUMBER,
    "data_sizes": SIZES,
}
OPTIONAL_FIELDS = {"bottleneck": INTEGER, "best_val_loss": NUMBER,
                   "train_seconds": NUMBER, "train_examples_per_s": NUMBER, "peak_memory_mb": NUMBER,
                   # runs recorded before ftcli measured them lack these
                   "select_metric": TEXT, "label_names": TEXTS, "test_confusion_matrix": MATRIX, "task_type": TEXT,
                   "learning_rate": NUMBER, "warnings": TEXTS}
SCORE_PREFIXES = ("best_val_", "inference_")  # the scores: `<prefix><metric>`, a number or null


def is_a(value: Any, kind: str) -> bool:
    """Whether a value read from JSON is of one of the kinds above (a boolean is not a number)."""
    if isinstance(value, bool):
        return False
    if kind == SIZES:
        return isinstance(value, dict) and all(is_a(value.get(s), INTEGER) for s in ("train", "validation", "test"))
    if kind == TEXTS:
        return isinstance(value, list) and all(is_a(v, TEXT) for v in value)
    if kind == MATRIX:
        return isinstance(value, list) and all(
            isinstance(row, list) and len(row) == len(value) and all(is_a(n, INTEGER) for n in row) for row in value)
    return {TEXT: isinstance(value, str), INTEGER: isinstance(value, int),
            POSITIVE: isinstance(value, int) and value > 0, NUMBER: isinstance(value, (int, float))}[kind]


def summary_problem(summary: dict) -> str | None:
    """What is wrong with a completed run's summary (None: it holds every field compare reads)."""
    for key, kind in SUMMARY_FIELDS.items():
        if key not in summary:
            return f"{key}: missing"
        if not is_a(summary[key], kind):
            return f"{key}: got {short_repr(summary[key])}, expected {kind}"
    for key, kind in OPTIONAL_FIELDS.items():
        if summary.get(key) is not None and not is_a(summary[key], kind):
            return f"{key}: got {short_repr(summary[key])}, expected {kind} or null"
    scores = [k for k in summary if k.startswith(SCORE_PREFIXES) and k not in OPTIONAL_FIELDS]
    for key in scores:
        if summary[key] is not None and not is_a(summary[key], NUMBER):
            return f"{key}: got {short_repr(summary[key])}, expected {NUMBER} or null"
    if not any(k.startswith("inference_") for k in scores):
        return "inference_<metric>: missing (no test score)"
    return None


def metrics_problem(metrics: list) -> str | None:
    """What is wrong with the records of metrics.jsonl (the learning curves read epoch and the
    val_<metric> scores)."""
    for line, record in enumerate(metrics, start=1):
        if not (isinstance(record, dict) and is_a(record.get("epoch"), INTEGER)
                and is_a(record.get("val_loss"), NUMBER)):
            return f"line {line}: expected an object with epoch and val_loss, got {short_repr(record)}"
        for key, value in record.items():
            if key.startswith("val_") and key not in VAL_PARTS and value is not None and not is_a(value, NUMBER):
                return f"line {line}: {key}: got {short_repr(value)}, expected {NUMBER} or null"
    return None


def read_run(path: Path) -> Run:
    """Read one run folder; raises ValueError with the reason when it is broken or not a run."""
    summary_path = path / SUMMARY_FILE
    if not summary_path.exists():
        raise ValueError(f"no {SUMMARY_FILE} (not a run folder, or a run that never started)")
    summary = read_record(path, SUMMARY_FILE, json.loads)
    if not isinstance(summary, dict):
        raise ValueError(f"{SUMMARY_FILE} is not a mapping")
    try:
        RunSummary.from_json(summary, SUMMARY_FILE)  # a newer schema: refused before anything is read
    except RecordError as e:
        raise ValueError(str(e)) from None
    status = summary.get("status")
    if status != "completed":  # before the (maybe large) metrics file is read at all
        raise ValueError(f"status {status!r}" + (f": {summary['error']}" if summary.get("error") else ""))
    config = read_record(path, CONFIG_FILE, safe_load)
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG_FILE} is not a mapping")
    metrics = read_metrics(path / METRICS_FILE)
    for name, problem in ((SUMMARY_FILE, summary_problem(summary)), (CONFIG_FILE, config_problem(config)),
                          (METRICS_FILE, metrics_problem(metrics))):
        if problem:
            raise ValueError(f"{name}: {problem}")
    try:
        return Run(path, RunSummary.from_json(summary, SUMMARY_FILE), config,
                   [EpochRecord.from_json(m, f"{METRICS_FILE} line {i}") for i, m in enumerate(metrics, start=1)])
    except RecordError as e:
        raise ValueError(str(e)) from None


def read_record(path: Path, name: str, parse) -> Any:
    """One small record file of a run folder, parsed; ValueError naming the file when unreadable."""
    try:
        return parse((path / name).read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{name}: unreadable record: {error_text(e)}") from None


def read_metrics(path: Path) -> list:
    """metrics.jsonl, one line at a time (a huge file is streamed, never held whole as text)."""
    if not path.exists():
        return []
    records = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError as e:
                        raise ValueError(f"{path.name} line {number}: not JSON ({error_text(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name}: unreadable record: {error_text(e)}") from None
    return records


def config_problem(config: dict) -> str | None:
    """A recorded config is plain data; YAML tags such as !!set or !!binary make other objects."""
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        kind = re.search(r"type (\w+) is not", str(e))
        return f"holds a value that is not plain data ({kind.group(1) if kind else e.__class__.__name__})"
    return None


def load_runs(runs_dir: Path) -> tuple[list[Run], list[tuple[Path, str]]]:
    """Every completed run under `runs_dir` (searched recursively), and the skipped folders."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FtcliError(f"{runs_dir}: no such folder")
    runs, skipped = [], []
    folders = sorted(p for p in runs_dir.rglob("*") if p.is_dir() and not p.name.startswith("."))
    for path in [runs_dir] if looks_like_run(runs_dir) else folders:
        has_sub_runs = any(looks_like_run(c) for c in path.iterdir() if c.is_dir())
        if not looks_like_run(path) and (has_sub_runs or path.parent != runs_dir):
            continue  # a folder grouping runs (e.g. a sweep) or something deeper inside a run
        try:
            runs.append(read_run(path))
        except ValueError as e:
            skipped.append((path, str(e)))
    return runs, skipped


def looks_like_run(path: Path) -> bool:
    return (path / SUMMARY_FILE).exists() or (path / CONFIG_FILE).exists()
