"""Sweeps: a base config plus a grid of dotted-key overrides, run resumably.

    base: ../ag_news_layerwise.yaml     # a config file (relative to the sweep file)
    name: size_curve                    # runs go to RUNS_DIR/<name>/<run name>
    set: {data.source: sample}          # applied to every run
    grid:                               # every combination of these values
      method.bottleneck: [2, 4, 8]
      seed: [0, 1, 2]
    rules:                              # extra overrides for the runs that match `if`
      - if: {method.mode: full}
        set: {train.learning_rate: 3.0e-5}
      - if: {method.mode: layerwise}        # a rule's own grid: only these runs get these values
        grid: {train.learning_rate: [3.0e-4, 1.0e-3, 3.0e-3]}

Rules apply in order to each combination of the grid; a rule's `grid` multiplies the matching runs
(a per-mode learning-rate grid without listing every combination by hand).
Run names come from the varied keys (`bottleneck=8_seed=1`), so rerunning a sweep finds its runs:
completed ones are skipped, interrupted ones resume from their checkpoint, missing ones start.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, check_name, config_from_dict, with_source_beside
from ..config_yaml import apply_overrides, parse_override, read_yaml
from ..errors import ConfigError
from ..runs.folder import CONFIG_FILE, read_summary
from ..training.loop import RunFailed
from ..workflows.train import recorded_difference, train_from_config
from .sweep_lock import run_lock

SWEEP_KEYS = ("base", "name", "set", "grid", "rules")


@dataclass(frozen=True)
class SweepRun:
    name: str  # folder name, from the varied keys
    overrides: tuple[str, ...]  # `key=value` applied to the base config
    cfg: RunConfig


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    runs: tuple[SweepRun, ...]


def _yaml_value(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML: `8`, `"imdb"`, `null`, `1e-05`


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _mapping(data: dict, key: str, path: Path, where: str | None = None) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{path}: {where or key}: expected a mapping of dotted keys to values")
    return value


def _rules(data: dict, path: Path) -> list[dict]:
    rules = data.get("rules") or []
    shape = f"{path}: rules: expected a list of {{if: {{key: value}}, set: {{key: value}}, grid: {{key: [values]}}}}"
    if not isinstance(rules, list) or not all(isinstance(r, dict) and set(r) <= {"if", "set", "grid"} for r in rules):
        raise ConfigError(shape)
    for i, rule in enumerate(rules):
        for part in ("if", "set", "grid"):
            _mapping(rule, part, path, f"rules[{i}].{part}")
        for key, values in (rule.get("grid") or {}).items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"rules[{i}].grid.{key}: expected a non-empty list of values")
    return rules


def _apply_rules(chosen: dict, overrides: dict, rules: list[dict]) -> list[tuple[dict, dict]]:
    """(varied keys, overrides) of every run one grid combination becomes: each matching rule sets its
    values, and its own grid multiplies the run (the rule's keys join the run name)."""
    runs = [(dict(chosen), dict(overrides))]
    for rule in rules:
        condition, grid = rule.get("if") or {}, rule.get("grid") or {}
        expanded = []
        for varied, values in runs:
            if not all(values.get(k) == v for k, v in condition.items()):
                expanded.append((varied, values))
                continue
            values = {**values, **(rule.get("set") or {})}
            for combo in itertools.product(*grid.values()):
                extra = dict(zip(grid, combo, strict=True))
                expanded.append(({**varied, **extra}, {**values, **extra}))
        runs = expanded
    return runs


MAX_CELLS = 10_000  # `ftcli sweep --max-cells`: a bigger grid is most likely a typo (and takes minutes to list)


def check_cells(path: Path, grid: dict, overrides: dict, rules: list[dict], max_cells: int) -> int:
    """How many runs the grid makes, counted before any is built; more than `max_cells` is refused.
    The grid's own product is a lower bound (a rule's grid only multiplies), so a huge grid is refused
    without walking it; a smaller one is walked through the rules on plain dicts (cheap)."""
    cells, at_least = math.prod(len(v) for v in grid.values()), "at least "
    if cells <= max_cells:  # walk it, stopping as soon as the count passes the limit
        cells, at_least = 0, ""
        for combo in itertools.product(*grid.values()):
            chosen = dict(zip(grid, combo, strict=True))
            cells += len(_apply_rules(chosen, {**overrides, **chosen}, rules))
            if cells > max_cells:
                at_least = "at least "
                break
    if cells > max_cells:
        raise ConfigError(f"{path}: the grid makes {at_least}{cells:,} runs, more than --max-cells {max_cells:,}; "
                          "check the grid, or raise --max-cells")
    return cells


def load_sweep(path: Path, extra_set: Sequence[str] = (), max_cells: int = MAX_CELLS) -> Sweep:
    """Read and validate a sweep file: every run's config is validated before anything runs.
    `extra_set` (`key=value` texts from `ftcli sweep --set`) joins the file's `set`, after it; a
    grid of more than `max_cells` runs is refused before any is built."""
    path = Path(path)
    data = read_yaml(path)
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown sweep key; allowed: {', '.join(SWEEP_KEYS)}")
    if not isinstance(data.get("base"), str):
        raise ConfigError(f"{path}: base: expected the path of a config file (relative to the sweep)")
    base_path = (path.parent / data["base"]).resolve()
    base = with_source_beside(read_yaml(base_path), base_path.parent)  # as `ftcli train` reads it
    fixed, grid = _mapping(data, "set", path), _mapping(data, "grid", path)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key}: expected a non-empty list of values")
    rules = _rules(data, path)
    extra = {".".join(parts): value for parts, value in map(parse_override, extra_set)}
    check_cells(path, grid, {**fixed, **extra}, rules, max_cells)
    varied = set(grid) | {key for rule in rules for part in ("set", "grid") for key in (rule.get(part) or {})}
    clash = sorted(varied & set(extra))  # silently losing to the grid would be worse than refusing
    if clash:
        raise ConfigError(f"--set {clash[0]}: the sweep itself sets it (grid or rules); edit {path} instead")
    runs, varied_by_name = [], {}
    for combo in itertools.product(*grid.values()):
        chosen = dict(zip(grid, combo, strict=True))
        for varied, overrides in _apply_rules(chosen, {**fixed, **extra, **chosen}, rules):
            name = "_".join(f"{_short(k)}={_format(v)}" for k, v in varied.items()) or "base"
            _check_distinct(path, name, varied, varied_by_name.setdefault(name, varied))
            texts = tuple(f"{k}={_yaml_value(v)}" for k, v in {**overrides, "name": name}.items())
            runs.append(SweepRun(name, texts, config_from_dict(apply_overrides(base, list(texts)))))
    sweep_name = data.get("name") or path.stem
    return Sweep(check_name(f"{path}: name", sweep_name), path, tuple(runs))


def _check_distinct(path: Path, name: str, varied: dict, first: dict) -> None:
    """Two different runs must not share a folder: the second would stop the sweep (its config
    differs from the one recorded there)."""
    if varied != first:
        shown = [", ".join(f"{_short(k)}={v!r}" for k, v in values.items()) for values in (first, varied)]
        raise ConfigError(f"{path}: {shown[0]} and {shown[1]} both make the run name {name!r}; "
                          "give values that differ in their first 6 digits")


def run_status(folder: Path, cfg: RunConfig) -> str:
    """`done`, `resume` (started, not completed), `new`, or `differs: KEY` when the folder holds a run
    of another config (the sweep file or its --set changed since): never counted as done."""
    if not folder.exists():
        return "new"
    if (folder / CONFIG_FILE).exists():
        key = recorded_difference(cfg, folder)
        if key is not None:
            return f"differs: {key}"
    return "done" if read_summary(folder).get("status") == "completed" else "resume"


@dataclass(frozen=True)
class RayOptions:
    """Where and how big each Ray task is (`ftcli sweep --launcher ray`)."""

    address: str | None = None  # an existing cluster (`ray start --head` prints it); None = a local one
    workers: int | None = None  # local cluster only: how many runs at once (None: one per `cpus` CPUs)
    cpus: float = 1.0  # CPUs reserved per run (torch threads follow it: Ray sets OMP_NUM_THREADS)
    gpus: float = 0.0  # GPUs per run (fractions share one)


def run_sweep(sweep: Sweep, runs_dir: Path, console, dry_run: bool = False,
              ray: RayOptions | None = None) -> list[tuple[str, str]]:
    """Run every run of the sweep not yet completed, here one after another or (`ray`) as Ray tasks;
    returns (name, outcome) per run. Several launchers may work on one sweep at once (other shells,
    machines on a shared file system): each run is claimed with a lock file first (`run_cell`), and a
    run another launcher holds is skipped as `busy`."""
    root = Path(runs_dir) / sweep.name
    statuses = [(run, run_status(root / run.name, run.cfg)) for run in sweep.runs]
    if dry_run:
        return [(run.name, status) for run, status in statuses]
    root.mkdir(parents=True, exist_ok=True)
    todo = [run for run, status in statuses if status in ("new", "resume")]
    done = {run.name: status for run, status in statuses if status not in ("new", "resume")}
    if todo:
        done.update(run_on_ray(sweep, todo, root, console, ray) if ray else run_here(sweep, todo, root, console))
    return [(run.name, done[run.name]) for run in sweep.runs]


def run_here(sweep: Sweep, todo: list[SweepRun], root: Path, console) -> dict[str, str]:
    """The local launcher: one run after another in this process."""
    outcomes, durations = {}, []
    for run in todo:
        left = len(todo) - len(durations)
        eta = f", eta {_clock(left * sum(durations) / len(durations))}" if durations else ""
        console.print(f"[bold]sweep {sweep.name}[/bold]: {len(sweep.runs) - left}/{len(sweep.runs)} done, running "
                      f"{run.name} ({run_status(root / run.name, run.cfg)}), {left - 1} left after it{eta}",
                      highlight=False)
        start = time.perf_counter()
        outcomes[run.name] = run_cell(run, sweep.path, root, console)
        durations.append(time.perf_counter() - start)
    return outcomes


def run_cell(run: SweepRun, sweep_path: Path, root: Path, console) -> str:
    """One sweep cell, as `ftcli train --resume` would run it, under its lock: `completed`, `failed`,
    `done` (finished meanwhile by another launcher) or `busy` (another launcher holds it). The same
    code runs in this process (local launcher) and in a Ray worker."""
    with run_lock(root / f".{run.name}.lock") as held_by:
        if held_by is not None:
            console.print(f"{run.name} is being trained by {held_by}; skipped", highlight=False, markup=False)
            return "busy"
        status = run_status(root / run.name, run.cfg)
        if status == "done" or status.startswith("differs"):  # finished meanwhile, or by another config
            return status
        try:
            train_from_config(run.cfg, sweep_path, root, overwrite=False, console=console, resume=True)
        except RunFailed as e:
            console.print(f"[red]{run.name} failed:[/red] {e}", highlight=False)
            return "failed"
        return "completed"


def run_on_ray(sweep: Sweep, todo: list[SweepRun], root: Path, console, options: RayOptions) -> dict[str, str]:
    """The Ray launcher: each cell is one Ray task running `run_cell` (so run folders, names, locks and
    resuming are the local launcher's). The run folders must be on a file system every node sees."""
    ray = start_ray(options)
    try:
        task = ray.remote(num_cpus=options.cpus, num_gpus=options.gpus)(_ray_cell)
        pending = {task.remote(run, sweep.path, root.resolve()): run.name for run in todo}
        outcomes = {}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ref)
            outcomes[name] = ray.get(ref)
            console.print(f"[bold]sweep {sweep.name}[/bold] on Ray: {name} {outcomes[name]}, "
                          f"{len(pending)} still queued or running", highlight=False)
        return outcomes
    finally:
        ray.shutdown()


def start_ray(options: RayOptions):
    """Ray, started on a local cluster of `options.workers` slots or joined at `options.address`."""
    import ray  # an optional extra (`pip install -e '.[ray]'`); the local launcher never needs it

    if options.address is None:
        workers = options.workers or max(1, int((os.cpu_count() or 1) // options.cpus))
        ray.init(num_cpus=workers * options.cpus, num_gpus=None, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=options.address, log_to_driver=False)
    return ray


def _ray_cell(run: SweepRun, sweep_path: Path, root: Path) -> str:
    """A Ray task: a worker has no terminal, so progress goes to the worker's log (stderr)."""
    from rich.console import Console

    return run_cell(run, sweep_path, root, Console(stderr=True, soft_wrap=True))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


SWEEP_PROBLEMS = {  # the last line of a sweep that left runs not completed with their own config, worst first
    "failed": "failed (see their summary.json); rerun to retry them",
    "differs": ("hold a run of another config (the sweep changed since); nothing was trained in them: delete "
                "those folders, or give the sweep another name"),
    "busy": "were skipped: another launcher holds them; rerun once it is done"}


def sweep_problem(name: str, outcomes: list[str]) -> str | None:
    counts = {word: sum(o.split(":")[0] == word for o in outcomes) for word in SWEEP_PROBLEMS}
    return next((f"{n} runs of {name} {SWEEP_PROBLEMS[w]}" for w, n in counts.items() if n), None)
