"""Layer ablation of a layer-wise adapter run (the paper's Fig. 6 left): bypass the adapters of
every contiguous span of layers [i..j] and measure the relative drop in validation accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.batches import make_loader
from ..data.splits import load_data
from ..data.tokens import encode_split
from ..errors import FtcliError
from ..methods.adapters import adapters_in, bypassed, encoder_layers, layout_of
from ..methods.registry import METHODS, names_where
from ..runs.artifacts import load_run_model
from ..runs.folder import check_writable, write_atomic, write_json
from ..runs.plots import pyplot, save_figure
from ..training.devices import distributed_accelerator
from ..training.evaluate import evaluate


def ablate_run(run_dir: Path, out_dir: Path, split: str = "validation") -> dict:
    """Evaluate the intact model and each span with adapters bypassed; write CSV, markdown, PNG."""
    check_writable(out_dir, "--out-dir")  # before minutes of loading
    run = load_run_model(run_dir)
    if not METHODS[run.cfg.method.mode].ablatable:
        raise FtcliError(f"{run_dir}: ablate needs a {' or '.join(names_where('ablatable'))} run "
                         f"(this one is {run.cfg.method.mode!r})")
    if run.spec.objective.name != "single_label":
        raise FtcliError(f"{run_dir}: ablate measures accuracy, of a single-label task; this run is "
                         f"{run.spec.objective.name}")
    data = load_data(run.cfg.data, run.cfg.seed)
    encoded = encode_split(data.parts[split], data.spec, run.tokenizer, run.cfg.model.max_length)
    accelerator = distributed_accelerator(run.cfg.train.mixed_precision)  # as the run trained (auto resolved)
    loader = accelerator.prepare(make_loader(encoded, run.cfg.train.eval_batch_size, run.tokenizer.pad_token_id))
    model = run.model.to(accelerator.device)
    layers = [layer for _, layer in encoder_layers(model, layout_of(model, run.cfg.model.layout, run.cfg.method.mode))]
    intact = evaluate(model, loader, accelerator, data.spec.objective).accuracy
    cells = []
    for i in range(len(layers)):
        for j in range(i, len(layers)):
            with bypassed(a for k in range(i, j + 1) for a in adapters_in(layers[k])):
                acc = evaluate(model, loader, accelerator, data.spec.objective).accuracy
            cells.append({"first": i, "last": j, "accuracy": acc, "relative_drop_pct": relative_drop(intact, acc)})
    result = {"run": str(run_dir), "split": split, "examples": len(encoded), "intact_accuracy": intact, "cells": cells}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tables(result, out_dir)
    plot_heatmap(result, len(layers), out_dir / "ablation_heatmap.png")
    return result


def result_line(result: dict, out_dir: Path) -> str:
    """`intact validation accuracy 0.8900; largest drop 12.3% with layers 0..2 bypassed; wrote DIR`."""
    drops = [c for c in result["cells"] if c["relative_drop_pct"] is not None]
    worst = max(drops, key=lambda c: c["relative_drop_pct"]) if drops else None
    largest = (f"largest drop {worst['relative_drop_pct']:.1f}% with layers {worst['first']}..{worst['last']} "
               "bypassed" if worst else "no relative drop to measure")
    return f"intact {result['split']} accuracy {result['intact_accuracy']:.4f}; {largest}; wrote {out_dir}"


def relative_drop(intact: float, accuracy: float) -> float | None:
    """Accuracy lost, in % of the intact accuracy; None when the intact model gets nothing right."""
    return 100 * (intact - accuracy) / intact if intact else None


def _pct(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_tables(result: dict, out_dir: Path) -> None:
    write_json(out_dir / "ablation.json", result)
    lines = ["| first layer | last layer | accuracy | relative drop (%) |", "|---|---|---|---|"]
    lines += [f"| {c['first']} | {c['last']} | {c['accuracy']:.4f} | {_pct(c['relative_drop_pct'], 2)} |"
              for c in result["cells"]]
    write_atomic(out_dir / "ablation.md", ("\n".join(lines) + "\n").encode())


def plot_heatmap(result: dict, n_layers: int, path: Path) -> None:
    plt = pyplot()
    grid = np.full((n_layers, n_layers), np.nan)
    for c in result["cells"]:
        grid[c["last"], c["first"]] = np.nan if c["relative_drop_pct"] is None else c["relative_drop_pct"]
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    image = ax.imshow(grid, cmap="viridis", origin="lower")
    for c in result["cells"]:
        ax.text(c["first"], c["last"], _pct(c["relative_drop_pct"], 1), ha="center", va="center", fontsize=7,
                color="white")
    ax.set_xticks(range(n_layers))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("first layer with adapters bypassed (0 = bottom)")
    ax.set_ylabel("last layer with adapters bypassed")
    ax.set_title(f"Relative {result['split']} accuracy drop (%)\nintact accuracy {100 * result['intact_accuracy']:.1f}%"
                 f", {result['examples']} examples")
    fig.colorbar(image, ax=ax, label="relative accuracy drop (%)")
    save_figure(plt, fig, path)
