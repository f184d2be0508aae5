"""Wall time of one small sweep on a local Ray cluster with 1 and with 2 workers (README, "Sweeps on Ray").

    python benchmarks/sweep_workers.py [--cells 8] [--model tiny-random-bert]

Each setting starts from an empty runs folder; the time includes starting Ray (a few seconds).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8, help="sweep cells (seeds of one config)")
    parser.add_argument("--model", default="tiny-random-bert")
    parser.add_argument("--train", type=int, default=256, help="training examples per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep.yaml"
        sweep.write_text(yaml.safe_dump({
            "base": str(ROOT / "configs" / "smoke" / "layerwise.yaml"), "name": "workers",
            "set": {"model.name": args.model, "data.max_train_samples": args.train, "data.max_eval_samples": 64,
                    "train.epochs": 1}, "grid": {"seed": list(range(args.cells))}}))
        print(f"| workers | wall s ({args.cells} runs of {args.model}, {args.train} examples, 1 epoch) |")
        print("|---|---|")
        for workers in (1, 2):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "finetune_cli", "sweep", str(sweep), "--runs-dir",  # noqa: S603 - our own CLI
                            str(Path(tmp) / f"runs{workers}"), "--launcher", "ray", "--workers", str(workers)],
                           check=True, capture_output=True)
            print(f"| {workers} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
