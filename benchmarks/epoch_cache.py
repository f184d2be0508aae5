"""Epoch times of the real loop with and without the frozen-encoder cache (issue: later epochs of
`top`/`head` >= 50x faster than a `full` epoch, with unchanged results).

    .venv/bin/python benchmarks/epoch_cache.py                      # AG News sample, 1000 examples
    .venv/bin/python benchmarks/epoch_cache.py --dataset imdb --train 500

Every run is `ftcli train`'s own path (`prepare_experiment` + `train`) on MiniLM and the bundled
sample; runs go one after another (an epoch is too long to interleave), so the machine's load
average is printed with the table. `train s` is the optimizer loop of one epoch (what the summary
records); `epoch wall s` adds the validation pass and, for epoch 1, building the loaders.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from finetune_cli.config import config_from_dict
from finetune_cli.runs.folder import write_json
from finetune_cli.training.experiment import prepare_experiment
from finetune_cli.training.loop import train

# (label, mode, cache): full is the yardstick; top/head with the cache (the default) and without
RUNS = [("full", "full", True), ("top", "top", True), ("top, no cache", "top", False),
        ("head", "head", True), ("head, no cache", "head", False)]


def run_one(mode: str, cache: bool, args: argparse.Namespace) -> dict:
    cfg = config_from_dict({
        "model": {"name": args.model, "max_length": args.max_length},
        "data": {"dataset": args.dataset, "source": "sample", "max_train_samples": args.train,
                 "max_eval_samples": args.eval},
        "method": {"mode": mode},
        "train": {"epochs": args.epochs, "learning_rate": 3e-5 if mode == "full" else 1e-3,
                  "cache_frozen_encoder": cache},
        "seed": args.seed,
    })
    exp = prepare_experiment(cfg)
    stamps = [time.perf_counter()]
    records: list = []  # EpochRecord

    def on_epoch(metrics: list) -> None:  # EpochRecords so far
        stamps.append(time.perf_counter())
        records.append(metrics[-1])

    out = train(exp, on_epoch)
    return {
        "train_seconds": [r.train_seconds for r in records],
        "epoch_wall_seconds": [b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        "val_accuracy": [r.value("accuracy") for r in records], "val_loss": [r.val_loss for r in records],
        "cached_features": out.cached_features, "trainable_params": exp.counts.trainable,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--dataset", default="ag_news", choices=["ag_news", "imdb", "snli"])
    parser.add_argument("--train", type=int, default=1000, help="training examples")
    parser.add_argument("--eval", type=int, default=500, help="validation examples")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the cache pays off from epoch 2")

    load_start = os.getloadavg()
    runs = {}
    for label, mode, cache in RUNS:
        print(f"running {label} ...", flush=True)
        runs[label] = run_one(mode, cache, args)
    full_epoch = statistics.mean(runs["full"]["train_seconds"])

    print(f"\n{args.model}, {args.dataset} sample: {args.train} train / {args.eval} validation examples, "
          f"{args.epochs} epochs, max_length {args.max_length}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {load_start[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print("| run | cached | train s per epoch | epoch wall s | later epochs: full epoch / this | val acc per epoch |")
    print("|---|---|---|---|---|---|")
    for label, r in runs.items():
        later = statistics.median(r["train_seconds"][1:])
        r["full_epoch_over_later_epoch"] = full_epoch / later
        print(f"| {label} | {r['cached_features'] or '-'} | {' / '.join(f'{s:.2f}' for s in r['train_seconds'])} "
              f"| {' / '.join(f'{s:.2f}' for s in r['epoch_wall_seconds'])} | {full_epoch / later:.1f}x "
              f"| {' / '.join(f'{a:.3f}' for a in r['val_accuracy'])} |")
    if args.out:
        write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
                              "threads": torch.get_num_threads(), "loadavg": [load_start, os.getloadavg()],
                              "runs": runs})


if __name__ == "__main__":
    main()
