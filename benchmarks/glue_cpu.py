"""Houlsby et al.'s GLUE Table 1, shaped the same, at the scale of a 2-core CPU: MiniLM-L6 instead of
BERT-large, a capped training set, one learning rate per method (README's), few seeds.

    python benchmarks/glue_cpu.py --data PATH/TO/glue [--runs-dir runs/glue_cpu] [--train 4000]
                                  [--seeds 0] [--tasks cola,sst2,mrpc,stsb,rte]

PATH/TO/glue holds one folder per task with train.jsonl.gz and dev.jsonl.gz (GLUE's test labels are
hidden, so dev is the test split and validation is carved from train). Every run is an ordinary
`ftcli train` of configs/glue/<task>.yaml (run folders under --runs-dir/<task>/; a completed run is
skipped, so the script resumes). Then it prints the table: rows = methods, columns = the tasks'
GLUE metrics on dev (x100, mean over seeds), trained parameters, and the paper's BERT-large rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FTCLI = [sys.executable, "-m", "finetune_cli"]
LEARNING_RATES = {"full": 5e-5, "layerwise": 1e-3, "top": 3e-3, "lora": 5e-4}  # README's per-method values
METRIC = {"cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "pearson", "rte": "accuracy",
          "qnli": "accuracy", "mnli": "accuracy", "qqp": "f1"}
# Houlsby et al. 2019, Table 1 (BERT-large, GLUE test server): CoLA, SST, MRPC, STS-B, QQP, MNLI-m,
# MNLI-mm, QNLI, RTE, total
PAPER = {"full (paper, BERT-large)": [60.5, 94.9, 89.3, 87.6, 72.1, 86.7, 85.9, 91.1, 70.1, 80.4],
         "adapters 8-256 (paper)": [59.5, 94.0, 89.5, 86.9, 71.8, 84.9, 85.1, 90.7, 71.5, 80.0]}
PAPER_COLUMNS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli_m", "mnli_mm", "qnli", "rte", "total"]


def run_one(task: str, mode: str, seed: int, args) -> None:
    sets = {"data.source": str(args.data / task), "data.splits.test": "dev", "method.mode": mode,
            "train.learning_rate": LEARNING_RATES[mode], "data.max_train_samples": args.train,
            "data.max_eval_samples": args.eval, "train.epochs": args.epochs, "seed": seed}
    train_resumably(task, args.runs_dir / task, f"{mode}_seed={seed}", sets, f"{task} {mode} seed {seed}")


def train_resumably(task: str, runs_dir: Path, name: str, sets: dict, label: str) -> None:
    """`ftcli train configs/glue/<task>.yaml` into runs_dir/name with `sets`; a completed run is
    skipped, an interrupted one resumed (so the benchmark itself resumes)."""
    folder = runs_dir / name
    summary = folder / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("status") == "completed":
        return
    command = [*FTCLI, "train", str(ROOT / "configs" / "glue" / f"{task}.yaml"), "--runs-dir", str(runs_dir),
               "--name", name, "--overwrite" if not folder.exists() else "--resume"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    started = time.time()
    subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 - our own CLI, arguments built here
    print(f"== {label}: {time.time() - started:.0f} s", flush=True)


def table(args, tasks: list[str]) -> str:
    """The markdown table from `ftcli compare --format json` of each task's runs."""
    rows: dict[str, dict[str, str]] = {}
    params: dict[str, str] = {}
    for task in tasks:
        out = subprocess.run([*FTCLI, "compare", str(args.runs_dir / task), "--format", "json"], cwd=ROOT,  # noqa: S603
                             capture_output=True, text=True, check=True)
        for row in json.loads(out.stdout):
            value, sem = row[f"inference_{METRIC[task]}"], row[f"inference_{METRIC[task]}_sem"]
            cell = "-" if value is None else f"{100 * value:.1f}" + ("" if sem is None else f" ± {100 * sem:.1f}")
            rows.setdefault(row["mode"], {})[task] = cell
            params.setdefault(row["mode"], f"{row['trainable_pct']:.2f}%")
    header = " | ".join(f"{t} ({METRIC[t]})" for t in tasks)
    lines = [f"| method | {header} | trained params (of all) |", "|---" * (len(tasks) + 2) + "|"]
    for mode in LEARNING_RATES:
        if mode in rows:
            lines.append(f"| {mode} (MiniLM-L6) | " + " | ".join(rows[mode].get(t, "-") for t in tasks)
                         + f" | {params[mode]} |")
    for name, values in PAPER.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[PAPER_COLUMNS.index(t)]}" for t in tasks) + " | - |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "glue_cpu")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--eval", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--tasks", default="cola,sst2,mrpc,stsb,rte")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    started = time.time()
    if not args.table_only:
        for task in tasks:
            for seed in map(int, args.seeds.split(",")):
                for mode in LEARNING_RATES:
                    run_one(task, mode, seed, args)
        print(f"== all runs: {time.time() - started:.0f} s", flush=True)
    print(table(args, tasks))


if __name__ == "__main__":
    main()
