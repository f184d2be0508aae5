"""The data pipeline at full size: load + check + tokenize 1,000,000 generated rows, cold and warm.

    python benchmarks/data_pipeline.py [--rows 1000000] [--out benchmarks/results/data_pipeline.json]

Writes one CSV file of short rows (8-24 words drawn from the bundled AG News sample's vocabulary,
4 string labels), then runs, each in a fresh process, what `ftcli train` does before training:
`data.splits.load_data` (read the file with datasets, check rows and map labels in batches, carve validation
and test) and `data.tokens.encode_split` for the three splits (tokenize with the MiniLM tokenizer,
max_length 128). The first process starts with empty caches (cold), the second finds what the first
cached (warm). Reported per process: seconds from the call of load_data to the last tokenized split
(imports excluded, both measured the same way) and peak RSS of the whole process (imports included:
torch and transformers alone are ~0.5 GB). Targets (issue #9): warm at least 20x faster than cold,
peak RSS under 1.5 GB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = ["world", "sports", "business", "science"]


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    """`n` rows of 8-24 words from the AG News sample's vocabulary, labels drawn uniformly."""
    from finetune_cli.data.files import read_json_rows
    from finetune_cli.data.sources import sample_dir

    words = sorted({w for r in read_json_rows(sample_dir("ag_news") / "train.jsonl.gz") for w in r["text"].split()
                    if w.isalpha()})
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["text", "label"])
        for _ in range(n):
            out.writerow([" ".join(rng.choices(words, k=rng.randint(8, 24))), rng.choice(LABELS)])


def child(csv_path: str) -> dict:
    """One process: load + check + tokenize; seconds and peak RSS."""
    from transformers import AutoTokenizer

    from finetune_cli.config import DataConfig
    from finetune_cli.data.splits import load_data
    from finetune_cli.data.tokens import encode_split
    from finetune_cli.models.backbones import minilm_dir
    from finetune_cli.workflows.train import cache_state

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    started = time.perf_counter()
    data = load_data(DataConfig(source=csv_path, text=("text",), label="label"), seed=0)
    loaded = time.perf_counter()
    encoded = {name: encode_split(part, data.spec, tokenizer, 128) for name, part in data.parts.items()}
    done = time.perf_counter()
    return {"seconds": done - started, "load_seconds": loaded - started, "tokenize_seconds": done - loaded,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "sizes": data.sizes(),
            "checked_cache": data.cache, "tokenized_cache": cache_state(e.cache for e in encoded.values())}


def run_child(csv_path: Path, caches: Path) -> dict:
    env = {**os.environ, "FTCLI_CACHE": str(caches / "ftcli"), "HF_DATASETS_CACHE": str(caches / "datasets"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", str(csv_path)], env=env,  # noqa: S603 - this script
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_pipeline.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="ftcli-data-bench-") as tmp:
        csv_path = Path(tmp) / "rows.csv"
        started = time.perf_counter()
        write_rows(csv_path, args.rows)
        print(f"wrote {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        cold = run_child(csv_path, Path(tmp))
        warm = run_child(csv_path, Path(tmp))
    load = os.getloadavg()[0]
    result = {"rows": args.rows, "cold": cold, "warm": warm, "speedup": cold["seconds"] / warm["seconds"],
              "cpus": os.cpu_count(), "load_average_1min": load}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.rows:,} rows, {os.cpu_count()} CPUs, 1-min load average at the end {load:.1f}\n")
    print("| run | load + check s | tokenize s | total s | peak RSS MB | caches (checked / tokenized) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("cold", cold), ("warm", warm)):
        print(f"| {name} | {r['load_seconds']:.1f} | {r['tokenize_seconds']:.1f} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['checked_cache']} / {r['tokenized_cache']} |")
    print(f"\nwarm is {result['speedup']:.0f}x faster than cold (target >= 20x); peak RSS target < 1,500 MB")


if __name__ == "__main__":
    main()
