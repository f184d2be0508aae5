"""Does the method ranking hold on a second encoder family? The same task, budget and learning
rates on MiniLM-L6 (BERT layout, 22M) and MPNet-base (all-mpnet-base-v2, 110M; `make models`).

    python benchmarks/families_cpu.py --data PATH/TO/glue [--task sst2] [--train 1500] [--epochs 2]
                                      [--models minilm-l6,mpnet-base] [--runs-dir runs/families_cpu]

PATH/TO/glue holds one folder per task with train.jsonl.gz and dev.jsonl.gz (dev is the test split,
validation is carved from train). Every run is an ordinary `ftcli train` of configs/glue/<task>.yaml
(folders under --runs-dir/<model>/; a completed run is skipped, so the script resumes). It prints one
table: rows = methods, per model the test metric (x100), trained parameters and training seconds
(all epochs, evaluation excluded), then each model's ranking of the methods.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from glue_cpu import FTCLI, ROOT, train_resumably  # this folder is on sys.path when a script of it runs

LEARNING_RATES = {"full": 5e-5, "layerwise": 1e-3, "lora": 5e-4, "top": 3e-3}  # README's per-method values
METRIC = {"cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "pearson", "rte": "accuracy"}


def run_one(model: str, mode: str, args) -> None:
    sets = {"model.name": model, "model.max_length": args.max_length, "data.source": str(args.data / args.task),
            "data.splits.test": "dev", "method.mode": mode, "train.learning_rate": LEARNING_RATES[mode],
            "data.max_train_samples": args.train, "data.max_eval_samples": args.eval, "train.epochs": args.epochs,
            "seed": 0}
    train_resumably(args.task, args.runs_dir / model, mode, sets, f"{model} {mode}")


def results(args, model: str) -> dict[str, dict]:
    out = subprocess.run([*FTCLI, "compare", str(args.runs_dir / model), "--format", "json"], cwd=ROOT,  # noqa: S603
                         capture_output=True, text=True, check=True)
    return {row["mode"]: row for row in json.loads(out.stdout)}


def table(args, models: list[str]) -> str:
    metric = METRIC[args.task]
    found = {m: results(args, m) for m in models}
    header = " | ".join(f"{m}: test {metric} | trained | train s" for m in models)
    lines = [f"| method | {header} |", "|---" * (1 + 3 * len(models)) + "|"]
    for mode in LEARNING_RATES:
        cells = []
        for m in models:
            row = found[m].get(mode)
            value = None if row is None else row.get(f"inference_{metric}")
            cells += ["-", "-", "-"] if value is None else [
                f"{100 * value:.1f}", f"{row['trainable_pct']:.2f}%", f"{row['train_seconds']:.0f}"]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    for m in models:
        ranked = sorted((r[f"inference_{metric}"], mode) for mode, r in found[m].items()
                        if r.get(f"inference_{metric}") is not None)
        lines.append(f"\n{m} ranking: " + " > ".join(mode for _, mode in reversed(ranked)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", default="sst2", choices=sorted(METRIC))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "families_cpu")
    parser.add_argument("--models", default="minilm-l6,mpnet-base")
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--eval", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    models = args.models.split(",")
    started = time.time()
    if not args.table_only:
        for model in models:
            for mode in LEARNING_RATES:
                run_one(model, mode, args)
        print(f"== all runs: {time.time() - started:.0f} s", flush=True)
    print(table(args, models))


if __name__ == "__main__":
    main()
