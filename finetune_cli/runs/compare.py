"""Comparing runs: read completed run folders back, group seeds, select on validation, render tables."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from ..config import RunConfig, config_from_dict, config_to_dict, safe_load
from ..errors import ConfigError, FtcliError, error_text, short_repr
from ..data.metrics import METRIC_TEXT
from ..runs.folder import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE


@dataclass(frozen=True)
class Run:
    path: Path
    summary: dict  # holds SUMMARY_FIELDS, checked when read
    config: dict
    metrics: list[dict]


NUMBER, INTEGER, TEXT = "a number", "an integer", "a string"
POSITIVE, SIZES = "a positive integer", "a mapping of train, validation and test to integers"
TEXTS, MATRIX = "a list of strings", "a square list of lists of integers"
SUMMARY_FIELDS = {  # what comparing and plotting read from a completed run's summary.json
    "dataset": TEXT, "mode": TEXT, "model": TEXT, "data_source": TEXT, "seed": INTEGER, "epochs": INTEGER,
    "trainable_params": INTEGER, "backbone_params": POSITIVE, "trainable_pct": NUMBER,
    "data_sizes": SIZES, "inference_accuracy": NUMBER,
}
OPTIONAL_FIELDS = {"bottleneck": INTEGER, "best_val_loss": NUMBER, "best_val_accuracy": NUMBER,
                   "train_seconds": NUMBER, "train_examples_per_s": NUMBER, "peak_memory_mb": NUMBER,
                   # runs recorded before ftcli measured macro-F1 and confusion matrices lack these
                   "best_val_macro_f1": NUMBER, "inference_macro_f1": NUMBER, "select_metric": TEXT,
                   "label_names": TEXTS, "test_confusion_matrix": MATRIX}
COMPARE_METRICS = ("accuracy", "macro_f1")  # `ftcli compare --metric`: what is shown, selected on, plotted


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
    return None


def metrics_problem(metrics: list) -> str | None:
    """What is wrong with the records of metrics.jsonl (the learning curves read epoch, val_accuracy and,
    where recorded, val_macro_f1)."""
    for line, record in enumerate(metrics, start=1):
        if not (isinstance(record, dict) and is_a(record.get("epoch"), INTEGER)
                and is_a(record.get("val_accuracy"), NUMBER)):
            return f"line {line}: expected an object with epoch and val_accuracy, got {short_repr(record)}"
        if record.get("val_macro_f1") is not None and not is_a(record["val_macro_f1"], NUMBER):
            return f"line {line}: val_macro_f1: got {short_repr(record['val_macro_f1'])}, expected {NUMBER} or null"
    return None


def read_run(path: Path) -> Run:
    """Read one run folder; raises ValueError with the reason when it is broken or not a run."""
    summary_path = path / SUMMARY_FILE
    if not summary_path.exists():
        raise ValueError(f"no {SUMMARY_FILE} (not a run folder, or a run that never started)")
    try:
        summary = json.loads(summary_path.read_text())
        config = safe_load((path / CONFIG_FILE).read_text())
        metrics_path = path / METRICS_FILE
        lines = metrics_path.read_text().splitlines() if metrics_path.exists() else []
        metrics = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"unreadable record: {error_text(e)}") from None
    if not isinstance(summary, dict) or not isinstance(config, dict):
        raise ValueError("summary.json or config.yaml is not a mapping")
    status = summary.get("status")
    if status != "completed":
        raise ValueError(f"status {status!r}" + (f": {summary['error']}" if summary.get("error") else ""))
    for name, problem in ((SUMMARY_FILE, summary_problem(summary)), (CONFIG_FILE, config_problem(config)),
                          (METRICS_FILE, metrics_problem(metrics))):
        if problem:
            raise ValueError(f"{name}: {problem}")
    return Run(path, summary, config, metrics)


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


def normalized(config: dict) -> dict:
    """A recorded config with today's defaults filled in (runs recorded before a key was added)."""
    try:
        return config_to_dict(config_from_dict(config))
    except ConfigError:
        return config


def group_key(run: Run, also_ignore: tuple[str, ...] = ()) -> str:
    """Runs that differ only by seed (and name, and the dotted keys `also_ignore`) share a key."""
    config = {k: v for k, v in normalized(run.config).items() if k not in ("seed", "name")}
    for key in also_ignore:
        *sections, last = key.split(".")
        node = config
        for section in sections:  # copy each section on the way down: the run's config stays as read
            node[section] = dict(node.get(section) or {})
            node = node[section]
        node.pop(last, None)
    return json.dumps(config, sort_keys=True)


def config_value(run: Run, key: str) -> Any:
    """The value of a dotted key in a run's (normalized) config; None where it is absent."""
    node: Any = normalized(run.config)
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def parse_best_of(text: str | None) -> tuple[str, ...]:
    """`--best-of train.learning_rate,method.bottleneck` as dotted keys of the run config."""
    if not text:
        return ()
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    known = config_to_dict(RunConfig())
    for key in keys:
        node: Any = known
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError or isinstance(node, dict) or key in ("seed", "name"):
            raise ConfigError(f"--best-of: {key!r} is not a config value (e.g. train.learning_rate, "
                             "method.bottleneck)")
    return keys


def value_order(values: dict[str, Any]) -> tuple:
    """Sort key of a setting of config values: numbers by size (3e-05 < 0.0001), then other values as text."""
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, json.dumps(v))
                 for v in values.values())


@dataclass(frozen=True)
class Candidate:
    """One setting of the --best-of keys within a selection group: its validation score over seeds."""

    values: dict[str, Any]  # dotted key -> value
    runs: list[Run]
    metric: str  # one of COMPARE_METRICS
    val_mean: float | None  # mean best validation value of `metric` over its seeds

    def to_json(self) -> dict[str, Any]:
        return {"values": self.values, "n": len(self.runs), f"best_val_{self.metric}": self.val_mean}


def select_best(runs: list[Run], keys: tuple[str, ...], metric: str = "accuracy"
                ) -> tuple[list[Run], dict[Path, list[Candidate]]]:
    """Selection on validation (the paper's protocol): among runs that differ only in `keys` and seed,
    keep the setting of `keys` with the best mean validation value of `metric` over its seeds. Returns
    the kept runs, and for each kept run the candidates it was chosen from (the chosen one first)."""
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault(group_key(run, keys), {}).setdefault(group_key(run), []).append(run)
    kept, candidates = [], {}
    for settings in groups.values():
        found = [Candidate({k: config_value(members[0], k) for k in keys}, members, metric,
                           mean_sem([m.summary.get(f"best_val_{metric}") for m in members])[0])
                 for members in settings.values()]
        # best validation first; ties go to the smaller values (e.g. the lower learning rate)
        found.sort(key=lambda c: (c.val_mean is None, -(c.val_mean or 0.0), value_order(c.values)))
        kept += found[0].runs
        candidates.update({run.path: found for run in found[0].runs})
    return kept, candidates


def mean_sem(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (None for a single value; both None if any is missing)."""
    if any(v is None for v in values):
        return None, None
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return mean, sem


METRICS = ("best_val_loss", "best_val_accuracy", "best_val_macro_f1", "inference_accuracy", "inference_macro_f1",
           "train_seconds", "train_examples_per_s", "peak_memory_mb")


def compare_rows(runs: list[Run], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per group of runs that differ only by seed: means, SEMs, n, diff to full FT in `metric`."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for members in groups.values():
        s = members[0].summary
        row: dict[str, Any] = {
            "name": group_name(members), "runs": [str(m.path) for m in members],
            "seeds": [m.summary["seed"] for m in members], "n": len(members),
            "dataset": s["dataset"], "mode": s["mode"], "bottleneck": s.get("bottleneck"),
            "model": s["model"], "trainable_params": s["trainable_params"],
            "trainable_pct": s["trainable_pct"], "backbone_pct": 100 * s["trainable_params"] / s["backbone_params"],
            "epochs": s["epochs"], "data_source": s["data_source"],
            "data_sizes": s["data_sizes"], "data_key": _data_key(members[0]),
        }
        for field in METRICS:
            row[field], row[field + "_sem"] = mean_sem([m.summary.get(field) for m in members])
        rows.append(row)
    shown = f"inference_{metric}"
    for row in rows:  # points of `metric` against full fine-tuning on the same data and backbone
        full = [r for r in rows if r["mode"] == "full" and r["data_key"] == row["data_key"]]
        known = full and row[shown] is not None and full[0][shown] is not None
        row["metric"] = metric  # what diff_to_full (and, with --best-of, the candidates) measure
        row["diff_to_full"] = 100 * (row[shown] - full[0][shown]) if known else None
    for row in rows:
        del row["data_key"]
    return sorted(rows, key=lambda r: (r["dataset"], r["mode"] != "full", r["mode"], r["bottleneck"] or 0, r["name"]))


SORT_KEYS = ("dataset", "name", "mode", "inference_accuracy", "best_val_accuracy", "inference_macro_f1",
             "best_val_macro_f1", "trainable_params", "train_seconds", "train_examples_per_s", "peak_memory_mb")
DESCENDING = ("inference_accuracy", "best_val_accuracy", "inference_macro_f1", "best_val_macro_f1",
              "train_examples_per_s")  # best first


@dataclass
class Comparison:
    rows: list[dict[str, Any]]  # compare_rows of the selected runs, sorted
    runs: list[Run]  # the selected completed runs
    skipped: list[tuple[Path, str]]  # folders that are not completed runs (or lack the metric), with the reason


def compare_runs(runs_dir: Path, datasets: list[str] | None = None, modes: list[str] | None = None,
                 sort: str = "dataset", best_of: tuple[str, ...] = (), metric: str = "accuracy") -> Comparison:
    """`ftcli compare`: the completed runs under `runs_dir`, filtered, (with `best_of`: reduced to the
    setting of those keys with the best validation value of `metric`), grouped by seed and sorted."""
    if sort not in SORT_KEYS:
        raise FtcliError(f"--sort: got {sort!r}, expected one of {', '.join(SORT_KEYS)}")
    if metric not in COMPARE_METRICS:
        raise FtcliError(f"--metric: got {metric!r}, expected one of {', '.join(COMPARE_METRICS)}")
    runs, skipped = load_runs(runs_dir)
    runs = [r for r in runs if (not datasets or r.summary["dataset"] in datasets)
            and (not modes or r.summary["mode"] in modes)]
    runs, lacking = split_by_metric(runs, metric)
    skipped = sorted(skipped + lacking)
    candidates: dict[Path, list[Candidate]] = {}
    if best_of:
        runs, candidates = select_best(runs, best_of, metric)
    rows = compare_rows(runs, metric)
    for row in rows if best_of else ():
        found = candidates[Path(row["runs"][0])]
        row["best_of"] = found[0].values
        row["candidates"] = [c.to_json() for c in found]
    if sort != "dataset":  # compare_rows' own order is by data set
        rows.sort(key=lambda r: (r[sort] is None, r[sort]), reverse=sort in DESCENDING)
    return Comparison(rows, runs, skipped)


def split_by_metric(runs: list[Run], metric: str) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The runs that recorded `metric` on the test split, and the others with the reason: a run from
    before macro-F1 was measured is left out rather than shown as a hole or mixed into means (every
    run has its test accuracy, a required field)."""
    reason = (f"no {METRIC_TEXT[metric]} recorded (a run from before ftcli measured it); "
              "it is compared under --metric accuracy")
    has, lacking = [], []
    for run in runs:
        if run.summary.get(f"inference_{metric}") is not None:
            has.append(run)
        else:
            lacking.append((run.path, reason))
    return has, lacking


def group_name(members: list[Run]) -> str:
    """The run folder name; for a group of seeds, without its `seed=N` part (sweep names)."""
    name = members[0].path.name
    if len(members) > 1:
        name = re.sub(r"(^|_)seed=\d+(?=_|$)", "", name).strip("_") or name
    return name


def _data_key(run: Run) -> str:
    config = normalized(run.config)
    return json.dumps([config.get("data"), config.get("model")], sort_keys=True)


SHORT = {"accuracy": "acc", "macro_f1": "macro-F1"}  # metric names in column headers


def metric_columns(metric: str) -> list[tuple[str, Any]]:
    """The table's columns (header, renderer); the validation and test columns show `metric`."""
    return [
        ("name", lambda r: r["name"] + (f" (n={r['n']})" if r["n"] > 1 else "")),
        ("dataset", lambda r: r["dataset"]),
        ("mode", lambda r: r["mode"]),
        ("m", lambda r: "-" if r["bottleneck"] is None else str(r["bottleneck"])),
        ("trained params (% of backbone)", lambda r: f"{r['trainable_params']:,} ({r['backbone_pct']:.2f}%)"),
        ("best val loss", lambda r: _pm(r, "best_val_loss", 4)),
        (f"best val {SHORT[metric]}", lambda r: _pm(r, f"best_val_{metric}", 4)),
        (f"inference {SHORT[metric]}", lambda r: _pm(r, f"inference_{metric}", 4)),
        ("vs full (pts)", lambda r: "-" if r["diff_to_full"] is None else f"{r['diff_to_full']:+.2f}"),
        ("epochs", lambda r: str(r["epochs"])),
        ("train s", lambda r: _pm(r, "train_seconds", 1)),
        ("train ex/s", lambda r: _pm(r, "train_examples_per_s", 1)),
        ("peak MB", lambda r: _pm(r, "peak_memory_mb", 0)),
        ("data", lambda r: f"{r['data_source']} ({r['data_sizes']['train']}/{r['data_sizes']['validation']}/"
                           f"{r['data_sizes']['test']})"),
    ]


def _best_of_cell(row: dict) -> str:
    """`learning_rate=0.0001 (of 3: val 0.8790/0.8840/0.8610)`: the chosen setting and every candidate's
    mean validation value of the row's metric, in the order of the values."""
    chosen = ", ".join(f"{k.rsplit('.', 1)[-1]}={_value_text(v)}" for k, v in row["best_of"].items())
    ordered = sorted(row["candidates"], key=lambda c: value_order(c["values"]))
    key = f"best_val_{row['metric']}"
    scores = "/".join("-" if c[key] is None else f"{c[key]:.4f}" for c in ordered)
    return f"{chosen} (of {len(ordered)}: val {scores})"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def columns(rows: list[dict], metric: str = "accuracy") -> list[tuple[str, Any]]:
    """The table's columns: with --best-of, the chosen setting follows the mode."""
    shown = metric_columns(metric)
    if not any("best_of" in r for r in rows):
        return shown
    at = [h for h, _ in shown].index("m") + 1
    return [*shown[:at], (f"best of (mean val {SHORT[metric]} per value)", _best_of_cell), *shown[at:]]


def _pm(row: dict, metric: str, digits: int) -> str:
    if row[metric] is None:
        return "-"
    text = f"{row[metric]:.{digits}f}"
    return text if row[metric + "_sem"] is None else f"{text} ± {row[metric + '_sem']:.{digits}f}"


def render_text(rows: list[dict], fmt: str, metric: str = "accuracy") -> str:
    """Markdown, CSV or JSON text of the compare rows (JSON and CSV hold accuracy and macro-F1 both;
    markdown, as the table, shows `metric`)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    shown = columns(rows, metric)
    cells = [[render(r) for _, render in shown] for r in rows]
    headers = [h for h, _ in shown]
    if fmt == "csv":  # flat columns only; --best-of's chosen values as `best_of.<dotted key>`
        flat = [{**{k: v for k, v in r.items() if k not in ("runs", "seeds", "data_sizes", "candidates", "best_of")},
                 **{f"best_of.{k}": v for k, v in (r.get("best_of") or {}).items()}} for r in rows]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(flat[0]) if flat else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue()
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def render_table(rows: list[dict], title: str, metric: str = "accuracy") -> Table:
    """A rich Table of the compare rows (for the terminal)."""
    table = Table(title=title)
    shown = columns(rows, metric)
    for header, _ in shown:
        table.add_column(header, justify="left" if header in ("name", "dataset", "mode", "data") else "right",
                         overflow="fold")
    for row in rows:
        table.add_row(*(render(row) for _, render in shown))
    return table
