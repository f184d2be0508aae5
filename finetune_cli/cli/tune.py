"""`ftcli tune CONFIG`: each method at its own best settings (workflows/tune.py, tune_study.py)."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError
from . import Launcher, app, err, one_line_errors, out, require_ray


class Pruner(str, Enum):
    halving = "halving"
    hyperband = "hyperband"


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """`--budget 12` (trials per method) or `--budget 30m` / `2h` (wall time for the studies)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mh]?)\s*", text)
    if not found or float(found[1]) <= 0 or (not found[2] and not found[1].isdigit()):
        raise ConfigError(f"--budget: got {text!r}, expected a number of trials per method (e.g. 12) or of "
                          "minutes / hours of wall time (30m, 2h)")
    if not found[2]:
        return int(found[1]), None
    return None, float(found[1]) * (60 if found[2] == "h" else 1)


@app.command(epilog="Examples:\n\n  ftcli tune configs/business_news.yaml --methods head,top,lora,full --budget 8\n\n"
                    "  ftcli tune configs/ag_news_layerwise.yaml --space layerwise:method.bottleneck=16,64,256 "
                    "--budget 2h\n\n"
                    "  ftcli tune CONFIG --storage postgresql://host/db   # the same command on several machines")
@one_line_errors
def tune(
    config: Annotated[Path, typer.Argument(help="YAML config: the task and everything not tuned.")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods, one study each.")] = "full,layerwise,lora,top",
    budget: Annotated[str, typer.Option(help="Trials per method (12), or wall time for all studies (30m, "
                                             "2h).")] = "12",
    seeds: Annotated[int, typer.Option(min=1, help="Final runs of each method's best setting (the best "
                                                   "trial is the first).")] = 3,
    space: Annotated[Optional[list[str]], typer.Option(
        "--space", metavar="[METHOD:]KEY=V1,V2|LO..HI", help="Also tune KEY over choices or a log range, for "
        "every method or one (repeatable); each method's learning rate is tuned on its own range.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE",
                                                      help="Override a config value in every run.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="The tune folder goes to RUNS_DIR/NAME.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option(help="Tune folder name (default: tune-<config name>).")] = None,
    pruner: Annotated[Pruner, typer.Option(help="Optuna's pruner on the validation evaluations "
                                                "(train.eval_every_steps: more of them, earlier stops).")]
        = Pruner.halving,
    storage: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the studies (default: SQLite in the "
                                                        "tune folder); one URL shared = one study, many workers.")]
        = None,
    launcher: Annotated[Launcher, typer.Option(help="local: trials one after another here; ray: workers of "
                                                    "each study as Ray tasks (pip install -e '.\\[ray]').")]
        = Launcher.local,
    address: Annotated[Optional[str], typer.Option(help="Ray: an existing cluster's address.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Ray: trials at once (default: CPUs // "
                                                               "cpus-per-run).")] = None,
    cpus_per_run: Annotated[float, typer.Option(min=0.01, help="Ray: CPUs per trial.")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option(min=0.0, help="Ray: GPUs per trial (fractions share).")] = 0.0,
) -> None:
    """Tune each method's learning rate (and --space) with Optuna, re-run the best over seeds, compare."""
    from ..workflows.sweep import RayOptions
    from ..workflows.tune import plan_tune
    from ..workflows.tune_study import tune_all

    trials, minutes = parse_budget(budget)
    plan = plan_tune(config, [m.strip() for m in methods.split(",") if m.strip()], trials, minutes, seeds,
                     space or [], set_ or [], name, pruner.value, storage)
    if launcher is Launcher.ray:
        require_ray()
    ray = RayOptions(address, workers, cpus_per_run, gpus_per_run) if launcher is Launcher.ray else None
    for line in tune_all(plan, runs_dir, err, ray):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
