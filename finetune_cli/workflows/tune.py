"""`ftcli tune CONFIG`: each method at its own best settings, found by one Optuna study per method,
then re-run over seeds and compared.

Each method's study (TPE sampler, seeded) searches its learning rate on a log range (the registry's
`tune_range`) and any `--space` keys; every validation evaluation of a trial is reported to
Optuna, whose pruner (Successive Halving, or Hyperband) stops bad trials early: such a run is
recorded `pruned`. The studies live in one SQLite file in the tune folder (any SQLAlchemy URL with
--storage), so a rerun resumes without repeating finished trials and several processes or machines
can share one study (Optuna's RDB storage; a trial whose process died is retried once its heartbeat
goes stale). Then the best setting of each method is trained over K seeds (the trial's own run is
the first seed, copied) and compared: a table, figures and the recommendation (runs/recommend.py).

RUNS/<name>/ holds study.db, trials/<method>_t<N>/ (run folders), final/<method>_seed=<s>/, and
tune.json + tune.md (the answer).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, check_name, config_to_dict, load_config
from ..config_yaml import parse_override, read_yaml
from ..errors import ConfigError, FtcliError
from ..methods.registry import METHODS
from ..runs.folder import read_summary

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class LogRange:
    """A --space `LO..HI`: numbers sampled on a log scale."""

    lo: float
    hi: float

    def ends(self) -> tuple[float, float]:
        return self.lo, self.hi


Space = tuple[Any, ...] | LogRange  # what a --space value may be: a list of choices, or a log range


@dataclass(frozen=True)
class TunePlan:
    name: str  # the tune folder's name under the runs folder
    config: Path  # the base config file
    overrides: tuple[str, ...]  # --set, applied to every run
    methods: tuple[str, ...]
    trials: int | None  # per method; None with a time budget
    minutes: float | None  # wall time for all the studies together
    seeds: int  # final re-runs of each method's best setting
    spaces: dict[str, dict[str, Space]] = field(default_factory=dict)  # method -> dotted key -> space
    pruner: str = "halving"  # halving (Successive Halving) | hyperband
    storage: str | None = None  # an SQLAlchemy URL; None: sqlite in the tune folder


def parse_space(text: str) -> tuple[str | None, str, Space]:
    """`[METHOD:]KEY=v1,v2,...` (choices, YAML values) or `[METHOD:]KEY=LO..HI` (a log range)."""
    head, eq, values = text.partition("=")
    method, _, key = head.rpartition(":")
    if not eq or not key or not values:
        raise ConfigError(f"--space: got {text!r}, expected [METHOD:]KEY=v1,v2 or [METHOD:]KEY=LO..HI")
    if method and method not in METHODS:
        raise ConfigError(f"--space {text}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if ".." in values:
        lo, hi = (parse_override(f"{key}={v}")[1] for v in values.split("..", 1))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not 0 < lo < hi:
            raise ConfigError(f"--space {text}: a range is LO..HI with 0 < LO < HI (log scale)")
        return method or None, key, LogRange(float(lo), float(hi))
    choices = tuple(parse_override(f"{key}={v}")[1] for v in values.split(","))
    if len(set(map(json.dumps, choices))) != len(choices):
        raise ConfigError(f"--space {text}: a value is given twice")
    return method or None, key, choices


def method_spaces(methods: tuple[str, ...], spaces: list[str]) -> dict[str, dict[str, Space]]:
    """Each method's search space: its learning-rate range, then the --space keys for it."""
    out: dict[str, dict[str, Space]] = {m: {"train.learning_rate": LogRange(*METHODS[m].tune_range)} for m in methods}
    for text in spaces:
        method, key, space = parse_space(text)
        check_key(key)
        for m in [method] if method else methods:
            if m in out:
                out[m][key] = space
    return out


def check_key(key: str) -> None:
    """A dotted key of the run config that takes one value (not a section, seed or name)."""
    node: Any = config_to_dict(RunConfig())
    for part in key.split("."):
        node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
    if node is KeyError or isinstance(node, dict) or key in ("seed", "name", "method.mode"):
        raise ConfigError(f"--space: {key!r} is not a config value to tune (e.g. train.learning_rate, "
                          "method.bottleneck)")


def check_plan(plan: TunePlan) -> None:
    """Every setting of every space must load as a config (one line naming the key otherwise)."""
    for method, space in plan.spaces.items():
        for key, choices in space.items():  # each choice (a range: both ends) loads as a config
            for value in choices.ends() if isinstance(choices, LogRange) else choices:
                load_config(plan.config, [*plan.overrides, f"method.mode={method}", f"{key}={json.dumps(value)}"])


def study_key(plan: TunePlan, method: str) -> str:
    """What a study was created for (the config file, --set, the space): a rerun must match it."""
    text = json.dumps([Path(plan.config).read_text(), list(plan.overrides), method,
                       {k: list(v.ends()) if isinstance(v, LogRange) else list(v)
                        for k, v in plan.spaces[method].items()}], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def suggest(trial, space: dict[str, Space]) -> dict[str, Any]:
    """The trial's setting of each key of the space (Optuna's suggest_* API)."""
    values = {}
    for key, choices in space.items():
        if isinstance(choices, LogRange):
            values[key] = trial.suggest_float(key, choices.lo, choices.hi, log=True)
        else:
            picked = trial.suggest_categorical(key, [json.dumps(c) for c in choices])  # any YAML value
            values[key] = json.loads(picked)
    return values


def examples_seen(run_dir: Path) -> int:
    """Training examples a run processed (its compute): optimizer steps x batch x accumulation."""
    if not (run_dir / "config.yaml").exists():
        return 0  # stopped before it started
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    steps = (json.loads(lines[-1]).get("step") or 0) if lines else 0
    train = read_yaml(run_dir / "config.yaml")["train"]
    return int(steps) * int(train["batch_size"]) * int(train.get("grad_accumulation_steps", 1))


def copy_trial(source: Path, target: Path) -> None:
    """The best trial's run as the first seed of the final runs: the same config and seed train to
    the same bits, so it is copied, not trained again (its name recorded anew)."""
    if not (source / "summary.json").exists():
        raise FtcliError(f"{source}: the best trial's run folder is not here (trained on another machine "
                         "of a shared --storage?); run the final seeds where the trials' folders are")
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copytree(source, staging)
    summary = read_summary(staging)
    summary["name"] = target.name
    (staging / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        staging.rename(target)
    except OSError:  # another worker of the same study copied it first: the same files
        shutil.rmtree(staging, ignore_errors=True)


def start_finals(folder: Path, method: str, best: int) -> None:
    """Final runs of an earlier best trial (a rerun with more budget found a better one) are removed
    before the new best's are made; `final/<method>.best` records whose they are."""
    mark = folder / f"{method}.best"
    if mark.exists() and mark.read_text().strip() != str(best):
        for old in folder.glob(f"{method}_seed=*"):
            shutil.rmtree(old)
    folder.mkdir(parents=True, exist_ok=True)
    mark.write_text(f"{best}\n")


def plan_tune(config: Path, methods: list[str], trials: int | None, minutes: float | None, seeds: int,
              spaces: list[str], overrides: list[str], name: str | None, pruner: str,
              storage: str | None) -> TunePlan:
    """The checked plan of `ftcli tune` (every bad input one line, before anything is written)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"--methods: got {','.join(methods) or 'nothing'}; expected different methods of "
                          f"{', '.join(METHODS)}")
    cfg = load_config(config, overrides)  # the base config and --set load, or say why
    folder = check_name("--name", name or f"tune-{Path(config).stem}")
    if cfg.train.eval_every_steps is None:
        log.info("train.eval_every_steps is not set: the pruner sees one evaluation per epoch")
    plan = TunePlan(folder, Path(config).resolve(), tuple(overrides), tuple(methods), trials, minutes, seeds,
                    method_spaces(tuple(methods), spaces), pruner, storage)
    check_plan(plan)
    return plan
