"""`ftcli report`: a comparison (compare.py's rows and runs) as one self-contained HTML page: the
table of `ftcli compare`, the figures of plots.py (each run's test confusion matrix among them),
the config keys the runs differ in, and each run's warnings. Nothing on the page is loaded from
elsewhere (no script, stylesheet or image address; figures are PNG data URLs), so it opens offline
and travels as one file. Every text that comes from a run folder is HTML-escaped."""

from __future__ import annotations

import base64
import tempfile
from html import escape
from pathlib import Path

from .. import __version__
from . import plots
from .compare import Comparison
from .read import Run
from .render import columns
from .series import differing_keys, run_settings, setting_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.scroll { overflow-x: auto; }
figure { display: inline-block; margin: 0 1rem 1rem 0; }
img { max-width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: #555; }
.matrices img { max-width: 26rem; }
.warnings li { color: #a40000; }
code { font-size: 0.9em; }
"""
ABSENT = "-"  # a key one run's config lacks (another method's own setting)


def report_html(found: Comparison, runs_dir: Path, metric: str = "auto") -> str:
    """The whole page: header, table, figures, config differences, warnings, skipped folders."""
    names = run_names(found.runs, Path(runs_dir))
    with tempfile.TemporaryDirectory(prefix="ftcli-report-") as folder:  # plots.py writes files
        figures = figure_sections(found, Path(folder), metric, names)
    body = [header(found, runs_dir, names), table_section(found.rows, metric), *figures,
            config_section(found.runs, names), warnings_section(found.runs, names), skipped_section(found)]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>ftcli report: {escape(str(runs_dir))}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(part for part in body if part) + "\n</body>\n</html>\n")


def counted(n: int, word: str) -> str:
    """`1 run`, `3 runs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def run_names(runs: list[Run], runs_dir: Path) -> list[str]:
    """Each run as its folder under `runs_dir` (unique: two sweeps may each hold a `run`)."""
    return [run.path.name if run.path == runs_dir else run.path.relative_to(runs_dir).as_posix() for run in runs]


def run_warnings(run: Run) -> list[str]:
    """What the run recorded as wrong with its kept model; none for a run recorded before warnings
    (getattr: RunOutcome's field is as new as this report)."""
    return getattr(run.outcome, "warnings", None) or []


def header(found: Comparison, runs_dir: Path, names: list[str]) -> str:
    count = sum(len(run_warnings(run)) for run in found.runs)
    warned = f'<a href="#warnings">{counted(count, "warning")}</a>' if count else "no warnings"
    return (f"<h1>ftcli report</h1>\n<p>Runs folder <code>{escape(str(runs_dir))}</code>: "
            f"{counted(len(names), 'completed run')} in {counted(len(found.rows), 'row')} (runs that differ only "
            f"by seed share a row), {warned}. Written by ftcli {escape(__version__)}.</p>")


def table(headers: list[str], cells: list[list[str]], table_id: str) -> str:
    """An HTML table of plain texts (escaped here)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    return (f'<div class="scroll"><table id="{table_id}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody>\n</table></div>")


def table_section(rows: list[dict], metric: str) -> str:
    """`ftcli compare`'s table: its columns (render.py), one row per compare row."""
    shown = columns(rows, metric)
    return ("<h2>Comparison</h2>\n<p>Mean ± standard error over seeds; n: the seeds of a row.</p>\n"
            + table([h for h, _ in shown], [[render(r) for _, render in shown] for r in rows], "comparison"))


def figure_sections(found: Comparison, folder: Path, metric: str, names: list[str]) -> list[str]:
    """plots.py's figures, each read back from `folder` and inlined; the confusion matrices
    captioned with their run."""
    rows, runs = found.rows, found.runs
    plain = [("Test score against trained parameters", plots.plot_accuracy_vs_params(rows, runs, folder, metric)),
             ("Test score against training-set size", plots.plot_accuracy_vs_train_size(rows, runs, folder, metric)),
             ("Learning curves (validation)", plots.plot_learning_curves(runs, folder, metric))]
    sections = [f"<h2>{title}</h2>\n" + "\n".join(figure(p, p.name, p.name) for p in paths)
                for title, paths in plain if paths]
    recorded = plots.with_confusion_matrix(runs)
    name_of = dict(zip((run.path for run in runs), names, strict=True))
    matrices = [figure(path, name_of[run.path], f"test confusion matrix of {name_of[run.path]} (labels: "
                                                f"{', '.join(run.description.label_names or [])})")
                for run, path in zip(recorded, plots.plot_confusion_matrices(runs, folder), strict=True)]
    text = "\n".join(matrices) or "<p>No run recorded a test confusion matrix (single-label runs do).</p>"
    return [*sections, f'<h2>Confusion matrices (test split)</h2>\n<div class="matrices">\n{text}\n</div>']


def figure(path: Path, caption: str, alt: str) -> str:
    """A PNG inlined as a data URL, with its caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def config_section(runs: list[Run], names: list[str]) -> str:
    """The config keys whose values differ between the runs, one column per run; the keys that are
    the same everywhere once, folded away."""
    settings = [{k: v for k, v in run_settings(run).items() if k != "name"} for run in runs]  # name: a column
    differ = differing_keys(settings)
    every = dict.fromkeys(k for s in settings for k in s)
    common = [[k, setting_text(settings[0][k])] for k in every if k not in differ]
    if differ:
        shown = table(["key", *names], [[k, *(setting_text(s[k]) if k in s else ABSENT for s in settings)]
                                        for k in differ], "config-differences")
        intro = f"<p>The keys whose values differ between the runs ({ABSENT}: the run's method has no such key).</p>"
    else:
        shown, intro = "", "<p>No config key differs between the runs.</p>"
    folded = (f"<details><summary>{len(common)} keys with the same value in every run</summary>\n"
              f"{table(['key', 'value'], common, 'config-common')}\n</details>")
    return f"<h2>Config differences</h2>\n{intro}\n{shown}\n{folded}"


def warnings_section(runs: list[Run], names: list[str]) -> str:
    """Each run's warnings (e.g. a model that predicts one class)."""
    items = [f"<li><code>{escape(name)}</code>: {escape(w)}</li>"
             for run, name in zip(runs, names, strict=True) for w in run_warnings(run)]
    text = '<ul class="warnings">\n' + "\n".join(items) + "\n</ul>" if items else "<p>No run recorded a warning.</p>"
    return f'<h2 id="warnings">Warnings</h2>\n{text}'


def skipped_section(found: Comparison) -> str:
    """The folders that are not in the report, and why (empty: none)."""
    if not found.skipped:
        return ""
    items = "\n".join(f"<li><code>{escape(str(path))}</code>: {escape(reason)}</li>" for path, reason in found.skipped)
    return (f"<h2>Skipped folders</h2>\n<details><summary>{counted(len(found.skipped), 'folder')} not in the "
            f"report: not a completed run, or without the metric</summary>\n<ul>\n{items}\n</ul>\n</details>")
