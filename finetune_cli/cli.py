"""The `ftcli` command line: parse, call one function, render.

Domain errors (FtcliError) print one line to stderr and exit non-zero; set FTCLI_DEBUG=1 for the
full traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import FtcliError

app = typer.Typer(
    name="ftcli", no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
    help="Compare full fine-tuning with Houlsby adapters (arXiv 1902.00751) on IMDB, SNLI and AG News.",
)
out = Console()
err = Console(stderr=True)


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
            err.print(f"[red]ftcli: error:[/red] {e}", highlight=False, soft_wrap=True)
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
                    "  ftcli train configs/ag_news_layerwise.yaml --set method.bottleneck=16 --set train.epochs=1")
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
    from .config import load_config
    from .workflows import train_from_config

    overrides = list(set_ or []) + ([f"name={name}"] if name else [])
    cfg = load_config(config, overrides)
    summary = train_from_config(cfg, config, runs_dir, overwrite, err, resume)
    out.print(f"inference accuracy (test, best epoch {summary['best_epoch']}): "
              f"{summary['inference_accuracy']:.4f} | run folder: {runs_dir / summary['name']}", soft_wrap=True)


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


@app.command(epilog="Examples:\n\n  ftcli compare runs/\n\n  ftcli compare runs/ --format markdown > results.md")
@one_line_errors
def compare(
    runs_dir: Annotated[Path, typer.Argument(help="Folder of run folders.")] = Path("runs"),
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """One row per run (runs differing only by seed are grouped: mean ± SEM)."""
    from .results import compare_rows, load_runs, render_table, render_text

    runs, skipped = load_runs(runs_dir)
    rows = compare_rows(runs)
    if format is Format.table:
        wide = out if out.is_terminal else Console(width=220)  # pipes and logs: never fold cells
        wide.print(render_table(rows, f"ftcli compare {runs_dir}"))
    else:
        sys.stdout.write(render_text(rows, format.value))
    for path, reason in skipped:
        err.print(f"ftcli: skipped {path}: {reason}", highlight=False, soft_wrap=True)
    if not runs:
        raise FtcliError(f"{runs_dir}: no completed runs found")


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
) -> None:
    """Print labels and probabilities (JSON Lines) from trained run folders."""
    import json

    from .workflows import predict_runs, read_inputs

    preds, sizes = predict_runs(run_dirs, read_inputs(text or [], pair or [], file))
    for p in preds:
        sys.stdout.write(json.dumps(p) + "\n")
    sys.stdout.flush()
    per_task = ", ".join(f"{k[:-6]} {v / 1e6:.2f} MB" for k, v in sizes.items() if k.endswith("_bytes")
                         and k not in ("full_model_bytes", "shared_bytes_saved"))
    err.print(f"on disk per task: {per_task}; a full model copy: {sizes['full_model_bytes'] / 1e6:.2f} MB; "
              f"frozen tensors shared in memory: {sizes['shared_bytes_saved'] / 1e6:.2f} MB", highlight=False,
              soft_wrap=True)


def main() -> None:
    app()
