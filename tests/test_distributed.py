"""Several processes on the CPU (torchrun + gloo through accelerate): same run folder, rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONFIGS

from finetune_cli.runs.folder import RUN_FILES


@pytest.mark.parametrize("mode", ["layerwise", "top"])  # top: the cached frozen encoder under DDP
def test_two_cpu_processes_train_into_one_run_folder(tmp_path, mode):
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists() or shutil.which("torchrun")
    cmd = [str(torchrun if torchrun.exists() else "torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "finetune_cli", "train", str(CONFIGS / "smoke" / f"{mode}.yaml"), "--runs-dir", str(tmp_path),
           "--set", "train.epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / mode
    assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["num_processes"] == 2
    assert summary["cached_features"] == {"layerwise": None, "top": "cls"}[mode]
    assert summary["data_sizes"] == {"train": 64, "validation": 32, "test": 32}
    assert proc.stdout.count("inference accuracy") == 1  # rank 0 reports, once
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
