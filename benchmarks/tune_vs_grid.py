"""`ftcli tune` against the claim grid (configs/sweeps/claim.yaml + `compare --best-of`): the same
per-method test accuracy at how much less training compute?

Both run on the real AG News and SNLI (a folder with ag_news/ and snli/ split files, e.g. the shared
copies in ../shared/data), 2,000 train / 2,000 validation / 2,000 test examples, 3 epochs, full /
layerwise / top, 2 seeds. Compute is what each trained: optimizer steps x batch size, summed over
every run (pruned ones included), read from the run folders. Both halves are resumable (rerun the
script after a kill); the grid is `ftcli sweep`, the tune is `ftcli tune` with a trial budget.
`--halves tune` runs the tune alone (the grid's table is then docs/results.md's claim sweep) and
prints the grid's compute as planned by its sweep file: every grid run trains all its epochs.

    python benchmarks/tune_vs_grid.py --data ../shared/data --out /tmp/tune_vs_grid --budget 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLAIM = ROOT / "configs" / "sweeps" / "claim.yaml"
DATASETS, METHODS = ("ag_news", "snli"), ("full", "layerwise", "top")
SIZES = ["--set", "data.max_train_samples=2000", "--set", "data.max_eval_samples=2000", "--set", "train.epochs=3"]


def ftcli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "finetune_cli", *map(str, args)], check=True)  # noqa: S603 - our own CLI


def examples(folder: Path) -> int:
    """Training examples processed by the run folders under `folder` (steps x batch x accumulation);
    a tune's first final seed is a copy of its best trial, trained once, so counted once."""
    from finetune_cli.workflows.tune import examples_seen

    return sum(examples_seen(p.parent) for p in folder.rglob("summary.json")
               if not (p.parent.parent.name == "final" and p.parent.name.endswith("_seed=0")))


def planned_examples(sweep_file: Path, data: Path) -> int:
    """Training examples the sweep's runs process when each trains every epoch (no early stopping):
    epochs x optimizer steps per epoch x batch x accumulation, from each run's config."""
    from finetune_cli.workflows.sweep import load_sweep

    total = 0
    for run in load_sweep(sweep_file, [f"data.source={data}"]).runs:
        train, per_step = run.cfg.train, run.cfg.train.batch_size * run.cfg.train.grad_accumulation_steps
        total += train.epochs * -(-run.cfg.data.max_train_samples // per_step) * per_step
    return total


def grid(data: Path, out: Path) -> tuple[dict, float]:
    started = time.time()
    ftcli("sweep", CLAIM, "--runs-dir", out, "--set", f"data.source={data}")
    rows = json.loads(subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "finetune_cli", "compare", out / "claim", "--best-of", "train.learning_rate",
         "--format", "json"], check=True, capture_output=True, text=True).stdout)
    return {(r["dataset"], r["mode"]): r for r in rows}, time.time() - started


def tune(data: Path, out: Path, budget: str) -> tuple[dict, float]:
    started, rows = time.time(), {}
    for dataset in DATASETS:
        ftcli("tune", ROOT / "configs" / f"{dataset}_layerwise.yaml", "--runs-dir", out,
              "--name", f"tune-{dataset}", "--methods", ",".join(METHODS), "--budget", budget, "--seeds", "2",
              "--set", f"data.source={data}", "--set", "train.eval_every_steps=50", *SIZES)
        found = json.loads((out / f"tune-{dataset}" / "tune.json").read_text())
        for row in found["rows"]:
            rows[(row["dataset"], row["mode"])] = {**row, "setting": found["best"][row["mode"]]}
    return rows, time.time() - started


def print_tune(rows: dict, folder: Path, seconds: float, grid_examples: int) -> None:
    """The tune half alone: each method's chosen learning rate and test accuracy, and its compute
    against the grid's planned compute."""
    print("| data set | mode | tune: learning rate | test acc % (mean ± SEM) |")
    print("|---|---|---|---|")
    for key in sorted(rows):
        print(f"| {key[0]} | {key[1]} | {rows[key]['setting'].get('train.learning_rate', 0):.3g} | "
              f"{percent(rows[key])} |")
    spent = examples(folder)
    print(f"\ntraining examples processed: tune {spent:,}; the claim grid plans {grid_examples:,} "
          f"({grid_examples / max(spent, 1):.1f}x the tune's); wall time of the tune: {seconds / 60:.0f} min")


def percent(row: dict) -> str:
    return f"{100 * row['inference_accuracy']:.1f} ± {100 * (row['inference_accuracy_sem'] or 0):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with ag_news/ and snli/ split files")
    parser.add_argument("--out", type=Path, required=True, help="where both halves' run folders go")
    parser.add_argument("--budget", default="6", help="ftcli tune's --budget (trials per method)")
    parser.add_argument("--halves", default="grid,tune", choices=["grid,tune", "tune"],
                        help="tune: skip the grid (its compute is then the planned one)")
    args = parser.parse_args()
    grid_rows, grid_s = grid(args.data.resolve(), args.out / "grid") if "grid" in args.halves else ({}, 0.0)
    tune_rows, tune_s = tune(args.data.resolve(), args.out / "tune", args.budget)
    if not grid_rows:
        print_tune(tune_rows, args.out / "tune", tune_s, planned_examples(CLAIM, args.data.resolve()))
        return
    print("| data set | mode | grid: test acc % (lr) | tune: test acc % (lr) | difference (points) |")
    print("|---|---|---|---|---|")
    for key in sorted(grid_rows):
        g, t = grid_rows[key], tune_rows.get(key)
        if t is None:
            continue
        lr = g["best_of"]["train.learning_rate"]
        print(f"| {key[0]} | {key[1]} | {percent(g)} ({lr:g}) | {percent(t)} | "
              f"{100 * (t['inference_accuracy'] - g['inference_accuracy']):+.1f} |")
    spent = examples(args.out / "grid"), examples(args.out / "tune")
    print(f"\ntraining examples processed: grid {spent[0]:,}, tune {spent[1]:,} "
          f"({spent[0] / max(spent[1], 1):.1f}x less); wall time of this invocation: grid {grid_s / 60:.0f} min, "
          f"tune {tune_s / 60:.0f} min")


if __name__ == "__main__":
    main()
