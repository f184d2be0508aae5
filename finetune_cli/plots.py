"""Figures from compare rows (matplotlib, written as PNG): the paper's Fig. 3/4 (accuracy against
trained parameters, log x) and learning curves (validation accuracy per epoch)."""

from __future__ import annotations

from pathlib import Path

from .results import Run

COLORS = {"full": "black", "layerwise": "tab:orange", "pfeiffer": "tab:brown", "lora": "tab:red", "ia3": "tab:pink",
          "bitfit": "tab:olive", "top": "tab:purple", "top_layers": "tab:blue", "layernorm": "tab:green",
          "head": "tab:gray"}
TITLES = {"imdb": "IMDB", "snli": "SNLI", "ag_news": "AG News"}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend; imported here, not at the top, because
    matplotlib.pyplot costs ~0.5 s and only the figure commands need it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_params(rows: list[dict], folder: Path) -> list[Path]:
    """One PNG per data set: inference accuracy (mean ± SEM over seeds) against trained parameters."""
    plt = pyplot()
    written = []
    for dataset in sorted({r["dataset"] for r in rows}):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode in COLORS:
            points = sorted((r for r in rows if r["dataset"] == dataset and r["mode"] == mode),
                            key=lambda r: r["trainable_params"])
            if not points:
                continue
            _draw_series(ax, mode, points, [r["trainable_params"] for r in points])
            for r in points:
                if r["bottleneck"] is not None and len(points) > 1:
                    ax.annotate(f"m={r['bottleneck']}", (r["trainable_params"], 100 * r["inference_accuracy"]),
                                textcoords="offset points", xytext=(4, -10), fontsize=7, color=COLORS[mode])
        written.append(_finish(plt, fig, ax, "trained parameters (count, log scale)",
                               f"{TITLES.get(dataset, dataset)}: accuracy vs trained parameters",
                               folder / f"accuracy_vs_params_{dataset}.png"))
    return written


def plot_accuracy_vs_train_size(rows: list[dict], folder: Path) -> list[Path]:
    """One PNG per data set whose runs differ in training-set size: inference accuracy (mean ± SEM over
    seeds) against the number of training examples, one line per mode (where adapters and full
    fine-tuning cross)."""
    plt = pyplot()
    written = []
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        if len({r["data_sizes"]["train"] for r in chosen}) < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode in COLORS:
            points = sorted((r for r in chosen if r["mode"] == mode), key=lambda r: r["data_sizes"]["train"])
            if points:
                _draw_series(ax, mode, points, [r["data_sizes"]["train"] for r in points])
        written.append(_finish(plt, fig, ax, "training examples (log scale)",
                               f"{TITLES.get(dataset, dataset)}: accuracy vs training-set size",
                               folder / f"accuracy_vs_train_size_{dataset}.png"))
    return written


def _draw_series(ax, mode: str, points: list[dict], xs: list[float]) -> None:
    """One mode's test accuracy (%) at `xs`, SEM over seeds as error bars."""
    low, high = min(r["n"] for r in points), max(r["n"] for r in points)
    seeds = f"n={low} seed{'s' if high > 1 else ''}" if low == high else f"n={low}-{high} seeds per point"
    ax.errorbar(xs, [100 * r["inference_accuracy"] for r in points],
                yerr=[100 * (r["inference_accuracy_sem"] or 0) for r in points], marker="o", capsize=3,
                color=COLORS[mode], label=f"{mode} ({seeds})")


def _finish(plt, fig, ax, xlabel: str, title: str, path: Path) -> Path:
    """Log x axis, labels, grid and legend of an accuracy figure; saved to `path`."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("inference accuracy on the test split (%)")
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


def plot_learning_curves(runs: list[Run], folder: Path) -> list[Path]:
    """One PNG per data set: validation accuracy after each epoch, one line per run, colour by mode."""
    plt = pyplot()
    written = []
    for dataset in sorted({r.summary["dataset"] for r in runs}):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        seen = set()
        chosen = sorted((r for r in runs if r.summary["dataset"] == dataset), key=lambda r: r.path.name)
        for run in chosen:
            mode = run.summary["mode"]
            epochs = [m.get("epoch_progress", m["epoch"]) for m in run.metrics]  # mid-epoch evaluations too
            accs = [100 * m["val_accuracy"] for m in run.metrics]
            label = mode if mode not in seen else None
            seen.add(mode)
            ax.plot(epochs, accs, marker=".", color=COLORS.get(mode, "tab:red"), alpha=0.7, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"{TITLES.get(dataset, dataset)}: validation accuracy per epoch ({len(chosen)} runs)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, title="mode (one line per run)")
        written.append(save_figure(plt, fig, folder / f"learning_curves_{dataset}.png"))
    return written
