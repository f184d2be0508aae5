"""Figures from compare rows (matplotlib, written as PNG): the paper's Fig. 3/4 (accuracy or macro-F1
against trained parameters, log x), learning curves (validation value per evaluation) and each run's
confusion matrix on the test split. Each method's colour and marker are its registry record's
(methods/registry.py), so every registered method is drawn (and a mode it does not know, in cyan);
rows of one method that differ in another setting are series of their own (series.py), in shades
of its colour. File names hold only [A-Za-z0-9._-]."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..data.metrics import METRIC_TEXT, PERCENT
from ..methods.registry import METHODS
from .compare import headline
from .read import Run
from .series import Series, run_settings, split_series

UNKNOWN_STYLE = ("tab:cyan", ".")  # colour and marker of a mode this ftcli does not know (a newer ftcli's run)
LINE_STYLES = ("-", "--", ":", "-.")  # a method's further series: also told apart without colour
TITLES = {"imdb": "IMDB", "snli": "SNLI", "ag_news": "AG News"}


def style(mode: str) -> tuple[str, str]:
    """A method's (colour, marker) in the figures."""
    spec = METHODS.get(mode)
    return (spec.color, spec.marker) if spec else UNKNOWN_STYLE


def series_style(series: Series) -> tuple[str, str, str]:
    """A series' (colour, marker, line style): its method's own for the first; the others in paler
    (of a dark colour, such as full's black) or deeper shades of it and other line styles, so that
    each method stays one family of colours."""
    color, marker = style(series.mode)
    if series.index == 0:
        return color, marker, "-"
    from matplotlib.colors import to_hex, to_rgb  # matplotlib is imported for figures only (see pyplot)

    rgb = to_rgb(color)
    toward = 1.0 if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 0.6 else 0.0  # luminance
    amount = min(0.2 + 0.15 * series.index, 0.8)
    shade = to_hex([c + (toward - c) * amount for c in rgb])
    return shade, marker, LINE_STYLES[series.index % len(LINE_STYLES)]


def in_mode_order(items: list, mode_of) -> list:
    """`items` by mode: the registry's order (stable colours and legend), then any unknown mode."""
    order = mode_order(mode_of(i) for i in items)
    return sorted(items, key=lambda i: order.index(mode_of(i)))


def mode_order(modes: Iterable[str]) -> list[str]:
    return list(METHODS) + sorted(set(modes) - set(METHODS))


def row_series(rows: list[dict], runs: list[Run], x_of) -> list[Series]:
    """The series of one figure's rows (x: `x_of`); a row's settings are its runs' (they differ by
    seed only), and `--best-of`'s keys are chosen per point, not series."""
    by_path = {str(run.path): run for run in runs}
    fixed = tuple(dict.fromkeys(k for r in rows for k in r.get("best_of") or {}))
    return split_series(in_mode_order(rows, lambda r: r["mode"]), lambda r: r["mode"],
                        lambda r: run_settings(by_path[r["runs"][0]]), x_of, fixed)


def file_name(stem: str, taken: set[str]) -> str:
    """`<stem>.png` with [A-Za-z0-9._-] only (`mode=full_lr=0.001` -> `mode-full_lr-0.001`), and not
    one of `taken` (two stems that read the same get -2, -3, ...); it is added to `taken`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    name, n = f"{safe}.png", 1
    while name in taken:
        n += 1
        name = f"{safe}-{n}.png"
    taken.add(name)
    return name


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend; imported here, not at the top, because
    matplotlib.pyplot costs ~0.5 s and only the figure commands need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def row_metric(rows: list[dict], metric: str) -> str:
    """The metric a data set's figure shows: `metric`, or with auto its rows' headline (one task)."""
    return rows[0]["metric"] if metric == "auto" else metric


def scaled(value: float, metric: str) -> float:
    """A score as drawn: fractions in %, correlations and errors as they are."""
    return 100 * value if metric in PERCENT else value


def axis_text(metric: str) -> str:
    return f"{METRIC_TEXT[metric]} (%)" if metric in PERCENT else METRIC_TEXT[metric]


def plot_all(rows: list[dict], runs: list[Run], folder: Path, metric: str = "auto") -> list[Path]:
    """Every figure of `ftcli compare --plot` written into `folder`."""
    return (plot_accuracy_vs_params(rows, runs, folder, metric)
            + plot_accuracy_vs_train_size(rows, runs, folder, metric)
            + plot_learning_curves(runs, folder, metric) + plot_confusion_matrices(runs, folder))


def plot_accuracy_vs_params(rows: list[dict], runs: list[Run], folder: Path, metric: str = "auto") -> list[Path]:
    """One PNG per data set: the test `metric` (auto: the runs' headline; mean ± SEM over seeds)
    against trained parameters."""
    plt = pyplot()
    written, taken = [], set()
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        metric_here = row_metric(chosen, metric)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for series in row_series(chosen, runs, lambda r: r["trainable_params"]):
            points = sorted(series.members, key=lambda r: r["trainable_params"])
            _draw_series(ax, series, points, [r["trainable_params"] for r in points], metric_here)
            for r in points:
                value = r.get(f"inference_{metric_here}")
                if r["bottleneck"] is not None and len(points) > 1 and value is not None:
                    ax.annotate(f"m={r['bottleneck']}", (r["trainable_params"], scaled(value, metric_here)),
                                textcoords="offset points", xytext=(4, -10), fontsize=7,
                                color=series_style(series)[0])
        written.append(_finish(plt, fig, ax, "trained parameters (count, log scale)",
                               f"{TITLES.get(dataset, dataset)}: {METRIC_TEXT[metric_here]} vs trained parameters",
                               folder / file_name(f"{metric_here}_vs_params_{dataset}", taken), metric_here))
    return written


def plot_accuracy_vs_train_size(rows: list[dict], runs: list[Run], folder: Path, metric: str = "auto") -> list[Path]:
    """One PNG per data set whose runs differ in training-set size: inference accuracy or macro-F1
    (`metric`; mean ± SEM over seeds) against the number of training examples, one line per series (where
    adapters and full fine-tuning cross)."""
    plt = pyplot()
    written, taken = [], set()
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        if len({r["data_sizes"]["train"] for r in chosen}) < 2:
            continue
        metric_here = row_metric(chosen, metric)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for series in row_series(chosen, runs, lambda r: r["data_sizes"]["train"]):
            points = sorted(series.members, key=lambda r: r["data_sizes"]["train"])
            _draw_series(ax, series, points, [r["data_sizes"]["train"] for r in points], metric_here)
        written.append(_finish(plt, fig, ax, "training examples (log scale)",
                               f"{TITLES.get(dataset, dataset)}: {METRIC_TEXT[metric_here]} vs training-set size",
                               folder / file_name(f"{metric_here}_vs_train_size_{dataset}", taken), metric_here))
    return written


def _draw_series(ax, series: Series, points: list[dict], xs: list[float], metric: str) -> None:
    """One series' test `metric` at `xs`, SEM over seeds as error bars (points without it left out)."""
    known = [(x, r) for x, r in zip(xs, points, strict=True) if r.get(f"inference_{metric}") is not None]
    if not known:
        return
    low, high = min(r["n"] for r in points), max(r["n"] for r in points)
    seeds = f"n={low} seed{'s' if high > 1 else ''}" if low == high else f"n={low}-{high} seeds per point"
    color, marker, line = series_style(series)
    ax.errorbar([x for x, _ in known], [scaled(r[f"inference_{metric}"], metric) for _, r in known],
                yerr=[scaled(r[f"inference_{metric}_sem"] or 0, metric) for _, r in known], marker=marker,
                linestyle=line, capsize=3, color=color, label=series.label(seeds))


def _finish(plt, fig, ax, xlabel: str, title: str, path: Path, metric: str) -> Path:
    """Log x axis, labels, grid and legend of a figure of test `metric`; saved to `path`."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"inference {axis_text(metric)} on the test split")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def save_figure(plt, fig, path: Path) -> Path:
    """Tight layout, 120 dpi PNG at `path`, figure closed."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_curves(runs: list[Run], folder: Path, metric: str = "auto") -> list[Path]:
    """One PNG per data set: the validation `metric` (auto: the runs' headline) at each evaluation, one
    line per run, a colour per series (`learning_curves_<dataset>.png` for accuracy,
    `learning_curves_<metric>_<dataset>.png` for any other)."""
    plt = pyplot()
    written, taken = [], set()
    for dataset in sorted({r.description.dataset for r in runs}):
        chosen = sorted((r for r in runs if r.description.dataset == dataset), key=lambda r: r.path.name)
        metric_here = headline(chosen[0]) if metric == "auto" else metric
        suffix = "" if metric_here == "accuracy" else f"_{metric_here}"
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for series in split_series(in_mode_order(chosen, run_mode), run_mode, run_settings):
            for i, run in enumerate(series.members):
                _draw_curve(ax, run, metric_here, series_style(series), series.label() if i == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {axis_text(metric_here)}")
        ax.set_title(f"{TITLES.get(dataset, dataset)}: validation {METRIC_TEXT[metric_here]} per epoch "
                     f"({len(chosen)} runs)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="one line per run")
        written.append(save_figure(plt, fig, folder / file_name(f"learning_curves{suffix}_{dataset}", taken)))
    return written


def run_mode(run: Run) -> str:
    return run.description.mode


def _draw_curve(ax, run: Run, metric: str, look: tuple[str, str, str], label: str | None) -> None:
    """One run's validation `metric` per evaluation, mid-epoch ones too (records from before they
    existed have no epoch_progress)."""
    records = [m for m in run.metrics if m.value(metric) is not None]
    epochs = [m.epoch if m.epoch_progress is None else m.epoch_progress for m in records]
    color, marker, line = look
    ax.plot(epochs, [scaled(m.value(metric), metric) for m in records], marker=marker, markersize=4,
            linestyle=line, color=color, alpha=0.7, label=label)


def with_confusion_matrix(runs: list[Run]) -> list[Run]:
    """The runs that recorded their test confusion matrix (single-label ones, since ftcli measures it)."""
    return [r for r in runs if r.outcome.test_confusion_matrix]


def plot_confusion_matrices(runs: list[Run], folder: Path) -> list[Path]:
    """One PNG per run of `with_confusion_matrix`, in its order: `confusion_<run folder name>.png`
    (`confusion_<parent>_<name>.png` where two runs share a folder name, e.g. in two sweeps)."""
    plt = pyplot()
    recorded = with_confusion_matrix(runs)
    names = [r.path.name for r in recorded]
    written, taken = [], set()
    for run in recorded:
        name = run.path.name if names.count(run.path.name) == 1 else f"{run.path.parent.name}_{run.path.name}"
        written.append(plot_confusion_matrix(plt, run, folder / file_name(f"confusion_{name}", taken)))
    return written


def plot_confusion_matrix(plt, run: Run, path: Path) -> Path:
    """Test examples per (true, predicted) label, counts written in the cells, label names on the axes."""
    matrix = run.outcome.test_confusion_matrix
    names = run.description.label_names or []
    if len(names) != len(matrix):  # a summary without label names: their indices
        names = [str(i) for i in range(len(matrix))]
    side = 2.5 + 0.8 * len(matrix)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(matrix, cmap="Blues")
    darkest = max(max(row) for row in matrix)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if count > darkest / 2 else "black")  # readable on dark and light cells
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    scores = ", ".join(f"{METRIC_TEXT[m]} {v:.4f}" for m, v in run.outcome.test_scores.items()
                       if v is not None and m in ("accuracy", "macro_f1"))
    ax.set_title(f"{run.path.name}\ntest split (n={sum(map(sum, matrix))}): {scores}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(plt, fig, path)
