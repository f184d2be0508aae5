"""The Optuna side of `ftcli tune` (workflows/tune.py has the plan): one study per method in the
tune folder's storage, its trials as ftcli runs reported to the pruner, then the final re-runs
over seeds and the answer."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import load_config
from ..data.metrics import LOWER_IS_BETTER, METRIC_TEXT
from ..errors import ConfigError, FtcliError
from ..runs.compare import compare_runs
from ..runs.folder import write_json
from ..runs.recommend import recommend
from ..runs.render import render_text
from ..training.loop import RunFailed
from .sweep import RayOptions, start_ray
from .sweep_lock import run_lock
from .train import RunPruned, train_from_config
from .tune import TunePlan, copy_trial, examples_seen, start_finals, study_key, suggest

HEARTBEAT_S = 60  # a running trial's process proves it is alive this often (Optuna's RDB heartbeat)
# what SQLAlchemy says when another worker is creating the same tables at this moment
RACES = ("IntegrityError", "UNIQUE constraint", "already exists", "database is locked")
GRACE_S = 180  # a trial silent for this long is failed and retried once (its process died)


def optuna_module():
    import warnings

    import optuna  # lazy: ~1 s, and `ftcli --help` must not pay it

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # ftcli prints its own progress line per trial
    # the RDB heartbeat is Optuna's documented way to retry a dead worker's trial, still marked experimental
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(plan: TunePlan, folder: Path, attempts: int = 5):
    """The studies' RDB storage (SQLite in the tune folder by default), or one line why it cannot open.
    Workers starting at once race to create its tables (a unique-constraint error for all but one):
    the losers try again a moment later, when the tables exist."""
    optuna = optuna_module()
    url = plan.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors are many; the user needs one line
            text = f"{type(e).__name__}: {e}"
            racing = url.startswith("sqlite") or any(w in text for w in RACES)  # a local file: a race or a lock
            if attempt + 1 < attempts and racing:
                time.sleep(0.5 + attempt)
                continue
            raise ConfigError(f"--storage {plan.storage or url}: cannot open ({text.splitlines()[0][:200]})") \
                from None
    raise AssertionError("unreachable")


def make_pruner(name: str):
    optuna = optuna_module()
    return optuna.pruners.HyperbandPruner() if name == "hyperband" else optuna.pruners.SuccessiveHalvingPruner()


def open_study(plan: TunePlan, method: str, storage, seed: int, worker: int = 0):
    """The method's study, created or loaded; one made for another config is refused. The sampler's
    seed is the config's for a fresh study in one process (reproducible), and differs for every
    rerun (the trials so far) and every parallel worker (`worker`), which would otherwise draw the
    same settings again."""
    optuna = optuna_module()
    lower = load_config(plan.config, list(plan.overrides)).train.select_metric in LOWER_IS_BETTER
    startup = max(2, min(10, (plan.trials or 30) // 3))  # TPE's random start: a third of a small budget
    study = optuna.create_study(
        storage=storage, study_name=f"{plan.name}-{method}", load_if_exists=True,
        direction="minimize" if lower else "maximize", pruner=make_pruner(plan.pruner))
    salt = len(study.trials) * 7919 + worker * 104729  # primes: distinct seeds for distinct (rerun, worker)
    study.sampler = optuna.samplers.TPESampler(seed=seed + salt, n_startup_trials=startup)
    key = study_key(plan, method)
    made_for = study.user_attrs.get("ftcli_key")
    if made_for is None:
        study.set_user_attr("ftcli_key", key)
    elif made_for != key:
        raise ConfigError(f"study {study.study_name} was created with another config, --set or --space; "
                          "rerun with those, or give this tune another --name")
    return study


@dataclass
class Progress:
    """What the progress line says about one method's study."""

    method: str
    console: Any
    done: int = 0
    pruned: int = 0

    def trial_ended(self, study, trial) -> None:
        state = trial.state.name.lower()
        self.done += state == "complete"
        self.pruned += state == "pruned"
        best = study.best_value if any(t.state.name == "COMPLETE" for t in study.trials) else None
        value = "" if trial.value is None else f" -> {trial.value:.4f}"
        if state == "pruned":  # Optuna gives a pruned trial its last reported value
            value = f" at step {trial.last_step}" + ("" if trial.value is None else f" ({trial.value:.4f})")
        self.console.print(f"tune {self.method}: trial {trial.number} {state}{value} "
                           f"({self.done} done, {self.pruned} pruned; best {'-' if best is None else f'{best:.4f}'})",
                           highlight=False, markup=False, soft_wrap=True)


def trial_objective(plan: TunePlan, method: str, folder: Path, console):
    """The function Optuna calls per trial: one ftcli run, reported at every evaluation."""
    optuna = optuna_module()

    def objective(trial) -> float:
        setting = suggest(trial, plan.spaces[method])
        name = f"{method}_t{trial.number}"
        overrides = [*plan.overrides, f"method.mode={method}", f"name={json.dumps(name)}",
                     *(f"{k}={json.dumps(v)}" for k, v in setting.items())]
        cfg = load_config(plan.config, overrides)

        def observe(metric: str, record) -> None:
            value = record.value(metric)
            if value is not None:
                trial.report(value, record.step or record.epoch)
                if trial.should_prune():
                    raise RunPruned(f"pruned by ftcli tune at step {record.step}: val {METRIC_TEXT[metric]} "
                                    f"{value:.4f}")

        run = (folder / "trials" / name).resolve()
        if run.exists():  # trial numbers restart in a new storage: never train over another study's trial
            raise FtcliError(f"{run}: holds a trial of another study (a new --storage, or study.db deleted?); "
                             "give this tune another --name")
        trial.set_user_attr("run", str(run))
        try:
            summary = train_from_config(cfg, plan.config, folder / "trials", True, console, observer=observe)
        except RunPruned:
            raise optuna.TrialPruned() from None
        except RunFailed as e:
            raise optuna.TrialPruned(f"failed: {e}") from None  # a diverged learning rate: a bad trial, not a crash
        finally:  # the compute spent, pruned or not (the benchmark's x-axis)
            trial.set_user_attr("examples", examples_seen(folder / "trials" / name))
        metric = summary.outcome.select_metric
        return summary.outcome.best_val_loss if metric == "loss" else summary.outcome.best_val_scores[metric]

    return objective


def optimize_method(plan: TunePlan, folder: Path, method: str, console, storage, worker: int = 0) -> Any:
    """One method's study run to its budget (trials, or its share of the minutes); other workers of
    the same study count towards the trials."""
    optuna = optuna_module()
    study = open_study(plan, method, storage, load_config(plan.config, list(plan.overrides)).seed, worker)
    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks = [Progress(method, console).trial_ended]
    callbacks += [optuna.study.MaxTrialsCallback(plan.trials, states=ended)] if plan.trials else []
    left = plan.trials - sum(t.state in ended for t in study.trials) if plan.trials else None
    if left is None or left > 0:
        timeout = None if plan.minutes is None else 60 * plan.minutes / len(plan.methods)
        study.optimize(trial_objective(plan, method, folder, console), n_trials=left, timeout=timeout,
                       callbacks=callbacks, catch=())
    return study


def run_studies(plan: TunePlan, folder: Path, console, storage, ray: RayOptions | None = None) -> dict[str, Any]:
    """Every method's study to its budget: here one after another, or (`ray`) as Ray tasks, as many per
    method as the cluster has slots, all on the one storage; then the studies as they ended."""
    if ray is None:
        return {method: optimize_method(plan, folder, method, console, storage, worker_id(plan)) for method in
                plan.methods}
    run_on_ray(plan, folder, ray)
    return {method: open_study(plan, method, storage, 0) for method in plan.methods}  # as the workers left them


def worker_id(plan: TunePlan) -> int:
    """0 for the one process of a tune in its own folder's storage; with a shared --storage, this
    process's id (several workers may start at once)."""
    return 0 if plan.storage is None else os.getpid()


def run_on_ray(plan: TunePlan, folder: Path, options: RayOptions) -> None:
    """Workers of every study as Ray tasks (the storage must be one every node reaches: the default
    SQLite file on a shared file system, or a database URL)."""
    ray = start_ray(options)
    try:
        slots = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus))
        task = ray.remote(num_cpus=options.cpus, num_gpus=options.gpus)(_ray_worker)
        ray.get([task.remote(plan, folder.resolve(), method, 1 + i) for method in plan.methods
                 for i in range(slots)])
    finally:
        ray.shutdown()


def _ray_worker(plan: TunePlan, folder: Path, method: str, worker: int) -> None:
    """A Ray task: trials of one study until its budget is spent (progress to the worker's log)."""
    from rich.console import Console

    optimize_method(plan, folder, method, Console(stderr=True, soft_wrap=True), open_storage(plan, folder), worker)


def final_runs(plan: TunePlan, folder: Path, studies: dict, console) -> None:
    """Each method's best setting over `plan.seeds` seeds: its best trial is the first seed."""
    for method, study in studies.items():
        completed = [t for t in study.trials if t.state.name == "COMPLETE"]
        if not completed:
            raise FtcliError(f"tune {method}: no trial completed (all pruned or failed); widen its range or "
                             "give it more trials")
        best = study.best_trial
        base = load_config(plan.config, list(plan.overrides)).seed
        start_finals(folder / "final", method, best.number)
        copy_trial(Path(best.user_attrs["run"]), folder / "final" / f"{method}_seed={base}")
        setting = [f"{k}={json.dumps(v)}" for k, v in best_setting(best).items()]
        for seed in range(base + 1, base + plan.seeds):
            name = f"{method}_seed={seed}"
            overrides = [*plan.overrides, f"method.mode={method}", *setting, f"seed={seed}", f"name={json.dumps(name)}"]
            with run_lock(folder / "final" / f".{name}.lock") as held_by:
                if held_by is None:  # else another worker of the study trains it
                    train_from_config(load_config(plan.config, overrides), plan.config, folder / "final", False,
                                      console, resume=True)


def answer(plan: TunePlan, folder: Path, studies: dict, started: float) -> list[str]:
    """The final table (markdown), the recommendation and the compute, written to tune.json and tune.md."""
    found = compare_runs(folder / "final", modes=list(plan.methods))  # not an earlier tune's other methods
    metric = found.rows[0]["metric"]
    lines = recommend(found.rows, metric)
    examples = {m: sum(t.user_attrs.get("examples", 0) for t in s.trials) for m, s in studies.items()}
    table = render_text(found.rows, "markdown", metric)
    write_json(folder / "tune.json", {"schema_version": 1, "metric": metric, "rows": found.rows,
                                      "recommendation": lines, "trial_examples": examples,
                                      "wall_seconds": time.time() - started,
                                      "best": {m: best_setting(s.best_trial) for m, s in studies.items()}})
    (folder / "tune.md").write_text(table + "\n" + "\n".join(f"* {line}" for line in lines) + "\n")
    return [table, *lines]


def best_setting(trial) -> dict[str, Any]:
    """A trial's setting as config values (choices are stored as JSON text: see tune.suggest)."""
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in trial.params.items()}


def tune_all(plan: TunePlan, runs_dir: Path, console, ray: RayOptions | None = None) -> list[str]:
    """`ftcli tune`: the studies (here, or with `ray` as Ray tasks), the final runs, the answer (its lines)."""
    started, folder = time.time(), Path(runs_dir) / plan.name
    storage = open_storage(plan, folder) if plan.storage else None  # unreachable: nothing written yet
    folder.mkdir(parents=True, exist_ok=True)
    studies = run_studies(plan, folder, console, storage or open_storage(plan, folder), ray)
    final_runs(plan, folder, studies, console)
    return answer(plan, folder, studies, started)
