"""Figures from compare rows (matplotlib, written as PNG): the paper's Fig. 3/4 (accuracy or macro-F1
against trained parameters, log x), learning curves (validation value per evaluation) and each run's
confusion matrix on the test split. Each method's colour and marker are its registry record's
(methods/registry.py), so every registered method is drawn (and a mode it does not know, in cyan)."""

from __future__ import annotations

from pathlib import Path

from ..data.metrics import METRIC_TEXT, PERCENT
from ..methods.registry import METHODS
from .compare import headline
from .read import Run

UNKNOWN_STYLE = ("tab:cyan", ".")  # colour and marker of a mode this ftcli does not know (a newer ftcli's run)
TITLES = {"imdb": "IMDB", "snli": "SNLI", "ag_news": "AG News"}


def style(mode: str) -> tuple[str, str]:
    """A method's (colour, marker) in the figures."""
    spec = METHODS.get(mode)
    return (spec.color, spec.marker) if spec else UNKNOWN_STYLE


def modes_of(rows: list[dict]) -> list[str]:
    """The modes to draw: the registry's, in its order (stable colours and legend), then any unknown."""
    return list(METHODS) + sorted({r["mode"] for r in rows} - set(METHODS))


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


def plot_accuracy_vs_params(rows: list[dict], folder: Path, metric: str = "auto") -> list[Path]:
    """One PNG per data set: the test `metric` (auto: the runs' headline; mean ± SEM over seeds)
    against trained parameters."""
    plt = pyplot()
    written = []
    for dataset in sorted({r["dataset"] for r in rows}):
        metric_here = row_metric([r for r in rows if r["dataset"] == dataset], metric)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode in modes_of(rows):
            points = sorted((r for r in rows if r["dataset"] == dataset and r["mode"] == mode),
                            key=lambda r: r["trainable_params"])
            if not points:
                continue
            _draw_series(ax, mode, points, [r["trainable_params"] for r in points], metric_here)
            for r in points:
                value = r.get(f"inference_{metric_here}")
                if r["bottleneck"] is not None and len(points) > 1 and value is not None:
                    ax.annotate(f"m={r['bottleneck']}", (r["trainable_params"], scaled(value, metric_here)),
                                textcoords="offset points", xytext=(4, -10), fontsize=7, color=style(mode)[0])
        written.append(_finish(plt, fig, ax, "trained parameters (count, log scale)",
                               f"{TITLES.get(dataset, dataset)}: {METRIC_TEXT[metric_here]} vs trained parameters",
                               folder / f"{metric_here}_vs_params_{dataset}.png", metric_here))
    return written


def plot_accuracy_vs_train_size(rows: list[dict], folder: Path, metric: str = "auto") -> list[Path]:
    """One PNG per data set whose runs differ in training-set size: inference accuracy or macro-F1
    (`metric`; mean ± SEM over seeds) against the number of training examples, one line per mode (where
    adapters and full fine-tuning cross)."""
    plt = pyplot()
    written = []
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        if len({r["data_sizes"]["train"] for r in chosen}) < 2:
            continue
        metric_here = row_metric(chosen, metric)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode in modes_of(chosen):
            points = sorted((r for r in chosen if r["mode"] == mode), key=lambda r: r["data_sizes"]["train"])
            if points:
                _draw_series(ax, mode, points, [r["data_sizes"]["train"] for r in points], metric_here)
        written.append(_finish(plt, fig, ax, "training examples (log scale)",
                               f"{TITLES.get(dataset, dataset)}: {METRIC_TEXT[metric_here]} vs training-set size",
                               folder / f"{metric_here}_vs_train_size_{dataset}.png", metric_here))
    return written


def _draw_series(ax, mode: str, points: list[dict], xs: list[float], metric: str) -> None:
    """One mode's test `metric` at `xs`, SEM over seeds as error bars (points without it left out)."""
    known = [(x, r) for x, r in zip(xs, points, strict=True) if r.get(f"inference_{metric}") is not None]
    if not known:
        return
    low, high = min(r["n"] for r in points), max(r["n"] for r in points)
    seeds = f"n={low} seed{'s' if high > 1 else ''}" if low == high else f"n={low}-{high} seeds per point"
    color, marker = style(mode)
    ax.errorbar([x for x, _ in known], [scaled(r[f"inference_{metric}"], metric) for _, r in known],
                yerr=[scaled(r[f"inference_{metric}_sem"] or 0, metric) for _, r in known], marker=marker,
                capsize=3, color=color, label=f"{mode} ({seeds})")


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
    line per run, colour by mode (`learning_curves_<dataset>.png` for accuracy,
    `learning_curves_<metric>_<dataset>.png` for any other)."""
    plt = pyplot()
    written = []
    for dataset in sorted({r.description.dataset for r in runs}):
        chosen = sorted((r for r in runs if r.description.dataset == dataset), key=lambda r: r.path.name)
        metric_here = headline(chosen[0]) if metric == "auto" else metric
        text, suffix = axis_text(metric_here), "" if metric_here == "accuracy" else f"_{metric_here}"
        fig, ax = plt.subplots(figsize=(7, 4.5))
        seen = set()
        for run in chosen:
            mode = run.description.mode
            records = [m for m in run.metrics if m.value(metric_here) is not None]
            # mid-epoch evaluations too (records from before they existed have no epoch_progress)
            epochs = [m.epoch if m.epoch_progress is None else m.epoch_progress for m in records]
            values = [scaled(m.value(metric_here), metric_here) for m in records]
            label = mode if mode not in seen else None
            seen.add(mode)
            color, marker = style(mode)
            ax.plot(epochs, values, marker=marker, markersize=4, color=color, alpha=0.7, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {text}")
        ax.set_title(f"{TITLES.get(dataset, dataset)}: validation {METRIC_TEXT[metric_here]} per epoch "
                     f"({len(chosen)} runs)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="mode (one line per run)")
        written.append(save_figure(plt, fig, folder / f"learning_curves{suffix}_{dataset}.png"))
    return written


def plot_confusion_matrices(runs: list[Run], folder: Path) -> list[Path]:
    """One PNG per run that recorded its test confusion matrix: `confusion_<run folder name>.png`
    (`confusion_<parent>_<name>.png` where two runs share a folder name, e.g. in two sweeps)."""
    plt = pyplot()
    recorded = [r for r in runs if r.outcome.test_confusion_matrix]
    names = [r.path.name for r in recorded]
    written = []
    for run in recorded:
        name = run.path.name if names.count(run.path.name) == 1 else f"{run.path.parent.name}_{run.path.name}"
        written.append(plot_confusion_matrix(plt, run, folder / f"confusion_{name}.png"))
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
