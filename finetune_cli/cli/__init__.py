"""The `ftcli` command line: parse, call one function, render.

Domain errors (FtcliError) print one line to stderr and exit non-zero; FTCLI_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..errors import ConfigError, FtcliError
from ..methods.registry import METHODS, names_where
from ..runs.compare import COMPARE_METRICS, SORT_KEYS

app = typer.Typer(
    name="ftcli", no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
    help="Full fine-tuning, adapters, LoRA, (IA)3, BitFit, ...: how close each gets on your own text "
         "classification or regression data, at what cost in parameters, time and memory.",
)
out = Console(soft_wrap=True)  # piped or logged, a long line stays one line (never hard-wrapped at 80)
err = Console(stderr=True, soft_wrap=True)


METHOD_LIST = ", ".join(METHODS)  # every method, in the registry's order
# `ftcli train --help`'s list of the methods (method.mode), one line each: the registry's summaries
METHODS_EPILOG = "Methods (method.mode):\n\n" + "\n\n".join(f"  {s.name}: {s.summary}" for s in METHODS.values())


def debug() -> bool:
    return os.environ.get("FTCLI_DEBUG", "") not in ("", "0")


def one_line_errors(fn):
    """Turn domain errors into `ftcli: error: ...` and their exit code (traceback with FTCLI_DEBUG=1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FtcliError as e:
            if debug():
                raise
            err.print(f"[red]ftcli: error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            if debug():
                raise
            err.print("ftcli: interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def setup_logging() -> None:
    """Warnings (e.g. the offline fallback to the bundled sample) as one visible line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ftcli: %(levelname)s: %(message)s"))
    root = logging.getLogger("finetune_cli")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug() else logging.INFO)
    root.propagate = False


def version_callback(value: bool) -> None:
    if value:
        out.print(f"ftcli {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    setup_logging()


@app.command(epilog="Examples:\n\n  ftcli train configs/imdb_top.yaml\n\n"
                    "  ftcli train configs/ag_news_layerwise.yaml --set method.bottleneck=16 --set train.epochs=1\n\n"
                    + METHODS_EPILOG)
@one_line_errors
def train(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE",
                                                      help="Override a config value, e.g. train.epochs=1.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option(help="Run folder name (default: config name).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder of the same name.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last epoch checkpoint.")] = False,
) -> None:
    """Train and test one config; write the run folder runs/NAME/."""
    from ..config import load_config
    from ..hub import check_model_name

    overrides = list(set_ or []) + ([f"name={json.dumps(name)}"] if name else [])  # a string, even `1e5`
    cfg = load_config(config, overrides)  # before torch is imported (seconds): a config error is instant,
    check_model_name(cfg.model.name)  # and so is a Hub id on an offline machine
    from ..training.devices import distributed_state
    from ..workflows.train import train_from_config
    summary = train_from_config(cfg, config, runs_dir, overwrite, err, resume)
    if distributed_state().is_main_process:  # one line, not one per process
        from ..runs.render import result_line

        out.print(result_line(summary, runs_dir), soft_wrap=True)


def print_table(table) -> None:
    """At the terminal's width; piped, at $COLUMNS, else at the table's own width (a log file holds
    whole rows, and the narrow table's columns stay about 100 wide)."""
    columns = os.environ.get("COLUMNS", "")
    if out.is_terminal or columns.isdigit() and int(columns) > 0:
        out.print(table, soft_wrap=False)  # a table folds its cells to the width instead
        return
    natural = Console(width=1000).measure(table).maximum
    Console(width=natural).print(table)


class Launcher(str, Enum):
    local = "local"
    ray = "ray"


def require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--launcher ray: Ray is not installed; pip install -e '.[ray]' (or use --launcher local)")


@app.command(epilog="Examples:\n\n  ftcli sweep configs/sweeps/size_curve.yaml --dry-run\n\n"
                    "  ftcli sweep configs/sweeps/size_curve.yaml   # rerun to resume: completed runs are skipped\n\n"
                    "  ftcli sweep configs/sweeps/claim.yaml --set data.source=~/data   # ~/data/<dataset>/train.jsonl")
@one_line_errors
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML: base config + grid of overrides.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE",
                                                      help="Override a value in every run, e.g. "
                                                           "data.source=~/data.")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Runs go to RUNS_DIR/<sweep name>/<run name>.")] = Path("runs"),
    dry_run: Annotated[bool, typer.Option(help="List the runs and whether each is done / resume / new.")] = False,
    launcher: Annotated[Launcher, typer.Option(help="local: one run after another here; ray: each run a Ray "
                                                    "task (pip install -e '.\\[ray]').")] = Launcher.local,
    address: Annotated[Optional[str], typer.Option(help="Ray: an existing cluster's address (default: start "
                                                        "a local one).")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Ray, local cluster: runs at once (default: "
                                                               "CPUs // cpus-per-run).")] = None,
    cpus_per_run: Annotated[float, typer.Option(min=0.01, help="Ray: CPUs per run (its torch threads).")] = 1.0,
    gpus_per_run: Annotated[float, typer.Option(min=0.0, help="Ray: GPUs per run (fractions share).")] = 0.0,
    max_cells: Annotated[Optional[int], typer.Option(min=1, help="Refuse a grid of more runs than this "
                                                                  "(default 10,000).")] = None,
) -> None:
    """Run a grid of configs resumably (completed runs are skipped, interrupted ones resumed)."""
    from ..workflows.sweep import MAX_CELLS, RayOptions, load_sweep, run_sweep, sweep_problem

    plan = load_sweep(sweep_file, set_ or [], max_cells or MAX_CELLS)
    err.print(f"sweep {plan.name}: {len(plan.runs):,} runs", highlight=False, markup=False)
    ray = RayOptions(address, workers, cpus_per_run, gpus_per_run) if launcher is Launcher.ray else None
    if ray is not None and not dry_run:
        require_ray()
    outcomes = run_sweep(plan, runs_dir, err, dry_run, ray)
    for name, outcome in outcomes:
        word, _, key = outcome.partition(": ")
        note = f"  ({key} differs)" if key else ""  # from the config recorded in the folder
        out.print(f"{word:9} {runs_dir / plan.name / name}{note}", markup=False, highlight=False, soft_wrap=True)
    problem = sweep_problem(plan.name, [outcome for _, outcome in outcomes])
    if problem:
        raise FtcliError(problem)


Metric = Enum("Metric", {m: m for m in COMPARE_METRICS}, type=str)  # the task types' compare metrics


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


@app.command(epilog="Examples:\n\n  ftcli compare runs/\n\n  ftcli compare runs/ --format markdown > results.md\n\n"
                    "  ftcli compare runs/ --dataset imdb --mode full --mode layerwise --sort inference_accuracy\n\n"
                    "  ftcli compare runs/ --plot figures/\n\n"
                    "  ftcli compare runs/ --metric macro_f1   # selection, columns and figures by macro-F1\n\n"
                    "  ftcli compare runs/claim --best-of train.learning_rate   # selection on validation")
@one_line_errors
def compare(
    runs_dir: Annotated[Path, typer.Argument(help="Folder of run folders (searched recursively).")] = Path("runs"),
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    dataset: Annotated[Optional[list[str]], typer.Option(help="Only these data sets (repeatable).")] = None,
    mode: Annotated[Optional[list[str]], typer.Option(help=f"Only these modes (repeatable): {METHOD_LIST}.")] = None,
    sort: Annotated[str, typer.Option(help=f"Sort by one of: {', '.join(SORT_KEYS)}.")] = "dataset",
    plot: Annotated[Optional[Path], typer.Option(help="Write PNG figures into this folder (also one test "
                                                      "confusion matrix per run).")] = None,
    best_of: Annotated[Optional[str], typer.Option(
        "--best-of", metavar="KEYS", help="Comma-separated config keys (e.g. train.learning_rate): per data set, "
        "mode and other settings keep the value with the best mean validation --metric; report its test.")] = None,
    metric: Annotated[Metric, typer.Option(help="What the validation/test columns show, --best-of selects on, "
                                                "'vs full' and the figures measure (json and csv hold every "
                                                "score). auto: each run's select_metric (or its task type's "
                                                "first). Runs without the metric are skipped, with the reason.")]
        = Metric.auto,
    wide: Annotated[bool, typer.Option("--wide", help="Every column (validation scores, loss, epochs, "
                                                      "throughput, data); markdown/csv/json always have them.")]
        = False,
) -> None:
    """One row per run; runs differing only by seed are grouped (mean ± SEM, n); `!` marks a warning."""
    from ..runs.compare import compare_runs, no_runs_found, parse_best_of
    from ..runs.render import render_table, render_text

    found = compare_runs(runs_dir, dataset, mode, sort, parse_best_of(best_of), metric.value)
    rows, runs, skipped = found.rows, found.runs, found.skipped
    if format is Format.table:
        print_table(render_table(rows, f"ftcli compare {runs_dir}", metric.value, wide))
    else:
        sys.stdout.write(render_text(rows, format.value, metric.value))
    for warning in (w for row in rows for w in row["warnings"]):
        err.print(f"ftcli: warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for path, reason in skipped:
        err.print(f"ftcli: skipped {path}: {reason}", markup=False, highlight=False, soft_wrap=True)
    if not runs:
        raise no_runs_found(runs_dir, bool(dataset or mode))
    if plot is not None:
        from ..runs import plots

        plot.mkdir(parents=True, exist_ok=True)
        for path in plots.plot_all(rows, runs, plot, metric.value):
            err.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


@app.command(epilog="Examples:\n\n  ftcli report runs/   # writes report.html\n\n"
                    "  ftcli report runs/claim --out claim.html --metric macro_f1 --mode full --mode lora")
@one_line_errors
def report(
    runs_dir: Annotated[Path, typer.Argument(help="Folder of run folders (searched recursively).")] = Path("runs"),
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    dataset: Annotated[Optional[list[str]], typer.Option(help="Only these data sets (repeatable).")] = None,
    mode: Annotated[Optional[list[str]], typer.Option(help=f"Only these modes (repeatable): {METHOD_LIST}.")] = None,
    metric: Annotated[Metric, typer.Option(help="What the table and figures show (as compare's).")] = Metric.auto,
) -> None:
    """One HTML file, no network needed: compare's table and figures, config differences, warnings."""
    from ..workflows.report import write_report

    done = write_report(runs_dir, out_file, dataset, mode, metric.value)
    out.print(done.line(), markup=False, highlight=False, soft_wrap=True)


@app.command(epilog="Examples:\n\n  ftcli ablate runs/ag_news_layerwise   # writes runs/ag_news_layerwise/ablation/")
@one_line_errors
def ablate(
    run_dir: Annotated[Path, typer.Argument(help=f"A completed {' or '.join(names_where('ablatable'))} run folder.")],
    out_dir: Annotated[Optional[Path], typer.Option(help="Where the table and heatmap go.")] = None,
    split: Annotated[str, typer.Option(help="validation or test.")] = "validation",
) -> None:
    """Bypass the adapters of each span of layers \\[i..j]; table + heatmap of the accuracy drop."""
    from ..workflows.ablate import ablate_run, result_line

    if split not in ("validation", "test"):
        raise FtcliError(f"--split: got {split!r}, expected validation or test")
    target = out_dir or run_dir / "ablation"
    out.print(result_line(ablate_run(run_dir, target, split), target), soft_wrap=True)


@app.command(epilog="Examples:\n\n  ftcli predict runs/imdb_top --text \"A gripping, beautifully shot film.\"\n\n"
                    "  ftcli predict runs/imdb_layerwise runs/ag_news_layerwise --file inputs.jsonl\n\n"
                    "  ftcli predict runs/snli_top --text \"A man sleeps.\" --pair \"A person rests.\"")
@one_line_errors
def predict(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders (same backbone share it).")],
    text: Annotated[Optional[list[str]], typer.Option(help="Text to classify (premise for SNLI).")] = None,
    pair: Annotated[Optional[list[str]], typer.Option(help="Second sentence (hypothesis) per --text.")] = None,
    file: Annotated[Optional[Path], typer.Option(help="JSON Lines with the data set's fields; an optional "
                                                      "`run` field picks the run folder by name.")] = None,
    force: Annotated[bool, typer.Option(help="Also use a run that is not completed (interrupted, failed).")] = False,
    precision: Annotated[str, typer.Option(help="run (each run's own train.mixed_precision, as tested), fp32 or "
                                                "bf16.")] = "run",
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per forward pass (of similar length).")] = 64,
) -> None:
    """Print labels and probabilities (JSON Lines) from trained run folders."""
    from ..workflows.predict import predict_runs, read_inputs

    found = predict_runs(run_dirs, read_inputs(text or [], pair or [], file), force, precision, batch_size)
    for p in found.rows:
        sys.stdout.write(json.dumps(p, allow_nan=False) + "\n")
    sys.stdout.flush()
    err.print(found.sizes_line(), highlight=False, soft_wrap=True)


@app.command(epilog="Examples:\n\n  ftcli export runs/ag_news_full hf/ag_news_full   # AutoModel...from_pretrained\n\n"
                    "  ftcli export runs/ag_news_lora hf/ag_news_lora   # a PEFT adapter (PeftModel.from_pretrained)")
@one_line_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A completed run folder.")],
    out_dir: Annotated[Path, typer.Argument(help="A new (or empty) folder to write.")],
    force: Annotated[bool, typer.Option(help="Also export a run that is not completed (recorded in the "
                                             "manifest).")] = False,
) -> None:
    """Write a run as a folder that loads without ftcli: transformers, PEFT or AdapterHub (by mode)."""
    from ..workflows.export import export_run

    done = export_run(run_dir, out_dir, force)
    article = "an" if done.kind[0] in "aeiou" else "a"
    out.print(f"wrote {article} {done.kind} folder {out_dir} ({done.mode}, labels {', '.join(done.label_names)}); "
              f"load it with: {done.load_with}", markup=False, highlight=False, soft_wrap=True)


from . import bench, tune  # noqa: E402, F401 - their commands register on `app` (defined above)


def main() -> None:
    app()
