"""Figures: rows of one mode that differ in a setting are series of their own (own label, own
colour), a setting that moves points along x is the series' curve, and file names are plain."""

from __future__ import annotations

import re
import shutil

import pytest
from helpers import copy_run, ftcli, train_template_run
from matplotlib.colors import to_hex

from finetune_cli.runs import plots
from finetune_cli.runs.compare import compare_runs
from finetune_cli.runs.series import split_series

# (mode, learning rate, seed, test accuracy): full at two learning rates (the first with two seeds)
KNOWN = [("full", 1e-4, 0, 0.70), ("full", 1e-4, 1, 0.72), ("full", 3e-4, 0, 0.90), ("top", 1e-3, 0, 0.60)]
FULL_LABELS = ["full (train.learning_rate 0.0001)", "full (train.learning_rate 0.0003)"]


@pytest.fixture(scope="module")
def lr_runs(tmp_path_factory):
    """Run folders with known summaries, named as sweeps name them (with `=`)."""
    root = tmp_path_factory.mktemp("plots")
    template = train_template_run(root / "seed")
    for mode, lr, seed, test in KNOWN:
        copy_run(template, root / "runs" / f"mode={mode}_lr={lr:g}_seed={seed}", mode, lr, seed,
                 {"inference_accuracy": test})
    return root / "runs"


@pytest.fixture
def legends(monkeypatch):
    """The legend texts of every figure the plots draw, by file name."""
    found = {}
    save = plots.save_figure

    def keep_legend(plt, fig, path):
        found[path.name] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        return save(plt, fig, path)

    monkeypatch.setattr(plots, "save_figure", keep_legend)
    return found


def test_two_learning_rates_of_one_mode_are_two_series(lr_runs, tmp_path, legends):
    found = compare_runs(lr_runs)
    series = plots.row_series(found.rows, found.runs, lambda r: r["trainable_params"])
    assert [s.label() for s in series] == [*FULL_LABELS, "top"]
    assert [[r["n"] for r in s.members] for s in series] == [[2], [1], [1]]
    looks = [plots.series_style(s) for s in series]
    assert len({to_hex(color) for color, _, _ in looks}) == 3 and len({line for _, _, line in looks[:2]}) == 2
    assert looks[0][:2] == plots.style("full") and looks[1][1] == plots.style("full")[1]  # full's marker
    plots.plot_accuracy_vs_params(found.rows, found.runs, tmp_path)
    plots.plot_learning_curves(found.runs, tmp_path)
    assert legends["accuracy_vs_params_imdb.png"] == [f"{FULL_LABELS[0][:-1]}; n=2 seeds)",
                                                      f"{FULL_LABELS[1][:-1]}; n=1 seed)", "top (n=1 seed)"]
    assert legends["learning_curves_imdb.png"] == [*FULL_LABELS, "top"]  # one entry per series, not per run


def test_a_setting_along_x_is_the_curve_and_a_best_of_key_is_not_a_series():
    items = [{"mode": "lora", "method.bottleneck": m, "train.learning_rate": lr, "x": 100 * m}
             for m in (8, 16) for lr in (1e-3, 1e-4)]

    def split(**options):
        return split_series(items, lambda i: i["mode"], lambda i: {k: v for k, v in i.items() if "." in k},
                            **options)

    by_x = split(x_of=lambda i: i["x"])
    assert [(s.label(), [i["x"] for i in s.members]) for s in by_x] == [
        ("lora (train.learning_rate 0.0001)", [800, 1600]), ("lora (train.learning_rate 0.001)", [800, 1600])]
    assert len(split()) == 4  # learning curves: nothing is along x
    assert [s.label() for s in split(x_of=lambda i: i["x"], fixed=("train.learning_rate",))] == ["lora"]


def test_figure_file_names_are_plain_and_never_collide(lr_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(lr_runs, runs)
    # reads like mode=top_lr=0.001_seed=0 once made plain
    shutil.copytree(lr_runs / "mode=top_lr=0.001_seed=0", runs / "mode-top_lr-0.001_seed-0")
    result = ftcli("compare", runs, "--plot", tmp_path / "fig")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert [n for n in names if not re.fullmatch(r"[A-Za-z0-9._-]+", n)] == []
    assert [n for n in names if n.startswith("confusion_")] == [
        "confusion_mode-full_lr-0.0001_seed-0.png", "confusion_mode-full_lr-0.0001_seed-1.png",
        "confusion_mode-full_lr-0.0003_seed-0.png", "confusion_mode-top_lr-0.001_seed-0-2.png",
        "confusion_mode-top_lr-0.001_seed-0.png"]
    assert plots.file_name("confusion_a=b/c d<é>", set()) == "confusion_a-b-c-d-.png"
