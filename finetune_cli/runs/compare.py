"""Comparing runs: completed run folders (read.py) grouped by seed, selected on validation
(`--best-of`), reduced to one row per group with means and SEMs; render.py draws the rows."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_from_dict, config_to_dict
from ..data.metrics import LOWER_IS_BETTER, METRIC_TEXT
from ..data.objective import OBJECTIVES
from ..errors import ConfigError, FtcliError
from ..hub import MINILM, TINY_PREFIX
from ..methods.registry import METHODS, SECTIONS
from ..models.families import FAMILIES, family_or_none
from .read import Run, load_runs

# `ftcli compare --metric`: what is shown, selected on, plotted; each task type's objective says which
# it has. `auto`: each run's own headline, the metric it was selected by (its train.select_metric)
# where that is a test score, else its task type's first.
COMPARE_METRICS = ("auto", *dict.fromkeys(m for o in OBJECTIVES.values() for m in o.compare_metrics))


# the lora / ia3 defaults before `auto` (schema < 4): BERT's names, which `auto` resolves to for BERTs
PRE_V4_DEFAULTS = FAMILIES["bert"].auto_targets()
# the offline backbones of runs recorded before schema 4 (no `model_type` yet): both BERTs
PRE_V4_BERTS = (MINILM, TINY_PREFIX + "bert")


def headline(run: Run) -> str:
    """The metric `--metric auto` shows for a run."""
    objective = OBJECTIVES.get(run.description.task_type, OBJECTIVES["single_label"])
    chosen = run.outcome.select_metric
    return chosen if chosen in objective.compare_metrics else objective.compare_metrics[0]


def metric_of(metric: str):
    """The metric shown for each run: `metric`, or with `auto` the run's headline."""
    return headline if metric == "auto" else (lambda run: metric)


def normalized(config: dict, task_type: str = "single_label", model_type: str | None = None,
               recorded: dict[str, Any] | None = None) -> dict:
    """A recorded config with today's defaults filled in (runs recorded before a key was added), and
    each `auto` as what it resolves to: `train.select_metric` and `train.learning_rate` as the run
    recorded them (`recorded`: {"select_metric": ..., "learning_rate": ...} from its summary), else
    for the run's task type and method, the lora/ia3 targets for its model family (`model_type`:
    recorded since schema 4; before, the offline backbones were BERTs), so that a run recorded with
    the explicit value (before `auto` existed) and one recorded as `auto` are the same setting."""
    pre_v4 = isinstance(config.get("model"), dict) and "layout" not in config["model"]  # recorded before `auto`
    try:
        config = config_to_dict(config_from_dict(config))
    except ConfigError:
        return config
    method = config["method"]  # config_to_dict made fresh dicts: changed in place
    for (section, key), old_default in PRE_V4_DEFAULTS.items() if pre_v4 else ():
        if tuple(method[section][key]) == old_default:
            method[section][key] = "auto"  # what the default was then is what `auto` stands for now
    for section in SECTIONS:  # one method's own settings do not make two runs of another method differ
        if METHODS[method["mode"]].section != section:
            del method[section]
    config["train"] = resolved_train(config["train"], method["mode"], task_type, recorded or {})
    family = family_or_none(model_type or recorded_model_type(config["model"]["name"]), config["model"]["layout"])
    for (section, key), value in family.auto_targets().items() if family else ():
        if section in method and method[section][key] == "auto":
            method[section][key] = value
    return config


def resolved_train(train: dict, mode: str, task_type: str, recorded: dict[str, Any]) -> dict:
    """The train section with `select_metric` and `learning_rate` autos resolved (see normalized)."""
    train = dict(train)
    if train["select_metric"] == "auto" and (recorded.get("select_metric") or task_type in OBJECTIVES):
        train["select_metric"] = recorded.get("select_metric") or OBJECTIVES[task_type].default_metric
    if train["learning_rate"] == "auto":
        train["learning_rate"] = recorded.get("learning_rate") or METHODS[mode].learning_rate
    if train.get("mixed_precision") == "auto":  # what the run trained in (schema 6); fp32 before auto existed
        train["mixed_precision"] = recorded.get("mixed_precision") or "no"
    return train


def run_config(run: Run) -> dict:
    """A run's config, normalized with what its summary recorded."""
    recorded = {"select_metric": run.outcome.select_metric, "learning_rate": run.description.learning_rate,
                "mixed_precision": run.description.mixed_precision}
    return normalized(run.config, run.description.task_type, run.description.model_type, recorded)


def recorded_model_type(model_name: str) -> str | None:
    """The model type of a run recorded before schema 4, where its name says it (the offline ones)."""
    return "bert" if model_name in PRE_V4_BERTS else None


def group_key(run: Run, also_ignore: tuple[str, ...] = ()) -> str:
    """Runs that differ only by seed (and name, and the dotted keys `also_ignore`) share a key."""
    config = {k: v for k, v in run_config(run).items() if k not in ("seed", "name")}
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
    node: Any = run_config(run)
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


def select_best(runs: list[Run], keys: tuple[str, ...], metric: str = "auto"
                ) -> tuple[list[Run], dict[Path, list[Candidate]]]:
    """Selection on validation (the paper's protocol): among runs that differ only in `keys` and seed,
    keep the setting of `keys` with the best mean validation value of `metric` over its seeds. Returns
    the kept runs, and for each kept run the candidates it was chosen from (the chosen one first)."""
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault(group_key(run, keys), {}).setdefault(group_key(run), []).append(run)
    kept, candidates = [], {}
    for settings in groups.values():
        shown = metric_of(metric)(next(iter(settings.values()))[0])  # one task: one metric per group
        found = [Candidate({k: config_value(members[0], k) for k in keys}, members, shown,
                           mean_sem([m.outcome.value(f"best_val_{shown}") for m in members])[0])
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


COSTS = ("train_seconds", "train_examples_per_s", "peak_memory_mb")


def score_fields(members: list[Run]) -> list[str]:
    """best_val_loss and the best_val_/inference_ scores of the runs' task type (null where a run
    did not record one), then any other score they recorded."""
    objective = OBJECTIVES.get(members[0].description.task_type, OBJECTIVES["single_label"])
    found = [*objective.compare_metrics, *(m for r in members for m in (*r.outcome.best_val_scores,
                                                                         *r.outcome.test_scores))]
    return ["best_val_loss", *(f"{prefix}{m}" for prefix in ("best_val_", "inference_") for m in dict.fromkeys(found))]


def compare_rows(runs: list[Run], metric: str = "auto") -> list[dict[str, Any]]:
    """One row per group of runs that differ only by seed: means, SEMs, n, diff to full FT in `metric`."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for members in groups.values():
        s = members[0].description
        row: dict[str, Any] = {
            "name": group_name(members), "runs": [str(m.path) for m in members],
            "seeds": [m.description.seed for m in members], "n": len(members),
            "dataset": s.dataset, "mode": s.mode, "bottleneck": s.bottleneck,
            "model": s.model, "trainable_params": s.trainable_params,
            "trainable_pct": s.trainable_pct, "backbone_pct": 100 * s.trainable_params / s.backbone_params,
            "epochs": s.epochs, "data_source": s.data_source,
            "data_sizes": s.data_sizes, "data_key": _data_key(members[0]), "precision": precision_of(members[0]),
            "warnings": [f"{m.path.name}: {w}" for m in members for w in m.outcome.warnings or []],
        }
        for field in [*score_fields(members), *COSTS]:
            row[field], row[field + "_sem"] = mean_sem([m.outcome.value(field) for m in members])
        row["metric"] = metric_of(metric)(members[0])  # what diff_to_full (and the candidates) measure
        rows.append(row)
    for row in rows:  # points of the row's metric against full fine-tuning on the same data and backbone
        shown = f"inference_{row['metric']}"
        full = [r for r in rows if r["mode"] == "full" and r["data_key"] == row["data_key"]]
        full.sort(key=lambda r: r["precision"] != row["precision"])  # full fine-tuning in the same precision first
        known = full and row.get(shown) is not None and full[0].get(shown) is not None
        scale = 1 if row["metric"] in LOWER_IS_BETTER else 100  # points (x100), an error in its own units
        row["diff_to_full"] = scale * (row[shown] - full[0][shown]) if known else None
    for row in rows:
        del row["data_key"]
    return sorted(rows, key=lambda r: (r["dataset"], r["mode"] != "full", r["mode"], r["bottleneck"] or 0, r["name"]))


SCORES = tuple(f"{prefix}{m}" for m in COMPARE_METRICS[1:] for prefix in ("inference_", "best_val_"))
SORT_KEYS = ("dataset", "name", "mode", *SCORES, "trainable_params", "train_seconds", "train_examples_per_s",
             "peak_memory_mb")
DESCENDING = (*(k for k in SCORES if not k.endswith(LOWER_IS_BETTER)), "train_examples_per_s")  # best first


@dataclass
class Comparison:
    rows: list[dict[str, Any]]  # compare_rows of the selected runs, sorted
    runs: list[Run]  # the selected completed runs
    skipped: list[tuple[Path, str]]  # folders that are not completed runs (or lack the metric), with the reason


def compare_runs(runs_dir: Path, datasets: list[str] | None = None, modes: list[str] | None = None,
                 sort: str = "dataset", best_of: tuple[str, ...] = (), metric: str = "auto") -> Comparison:
    """`ftcli compare`: the completed runs under `runs_dir`, filtered, (with `best_of`: reduced to the
    setting of those keys with the best validation value of `metric`), grouped by seed and sorted."""
    if sort not in SORT_KEYS:
        raise FtcliError(f"--sort: got {sort!r}, expected one of {', '.join(SORT_KEYS)}")
    if metric not in COMPARE_METRICS:
        raise FtcliError(f"--metric: got {metric!r}, expected one of {', '.join(COMPARE_METRICS)}")
    runs, skipped = load_runs(runs_dir)
    runs = [r for r in runs if (not datasets or r.description.dataset in datasets)
            and (not modes or r.description.mode in modes)]
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
        rows.sort(key=lambda r: (r.get(sort) is None, r.get(sort)), reverse=sort in DESCENDING)
    return Comparison(rows, runs, skipped)


def no_runs_found(runs_dir: Path, filtered: bool) -> FtcliError:
    """What `ftcli compare` and `ftcli report` say when nothing is left to show."""
    return FtcliError(f"{runs_dir}: no completed runs found" + (" (after filters)" if filtered else ""))


def split_by_metric(runs: list[Run], metric: str) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The runs that recorded `metric` on the test split, and the others with the reason: a run from
    before macro-F1 was measured is left out rather than shown as a hole or mixed into means (every
    run has its test accuracy, a required field)."""
    has, lacking = [], []
    for run in runs:
        reason = metric_missing(run, metric_of(metric)(run))
        if reason is None:
            has.append(run)
        else:
            lacking.append((run.path, reason))
    return has, lacking


def metric_missing(run: Run, metric: str) -> str | None:
    """Why a run cannot be compared by `metric` (None: it can): its task type has no such metric
    (or is unknown to this ftcli), or it was recorded before ftcli measured it."""
    task_type = run.description.task_type
    objective = OBJECTIVES.get(task_type)
    if objective is None:
        return f"task type {task_type!r} is unknown to this ftcli; upgrade finetune-cli to compare it"
    if metric not in objective.compare_metrics:
        return f"a {task_type} run has no {METRIC_TEXT[metric]} (it has: {', '.join(objective.compare_metrics)})"
    if run.outcome.value(f"inference_{metric}") is None:
        return (f"no {METRIC_TEXT[metric]} recorded (a run from before ftcli measured it); "
                "it is compared under --metric accuracy")
    return None


def group_name(members: list[Run]) -> str:
    """The run folder name; for a group of seeds, without its `seed=N` part (sweep names)."""
    name = members[0].path.name
    if len(members) > 1:
        name = re.sub(r"(^|_)seed=\d+(?=_|$)", "", name).strip("_") or name
    return name


def precision_of(run: Run) -> str:
    """The precision a run trained in: fp32 (`no`), bf16 or fp16; auto as resolved (schema 6)."""
    precision = run_config(run)["train"].get("mixed_precision", "no")
    return "fp32" if precision == "no" else precision


def _data_key(run: Run) -> str:
    config = run_config(run)
    return json.dumps([config.get("data"), config.get("model")], sort_keys=True)
