"""`ftcli sweep --launcher ray`: each cell a Ray task on a local 2-worker cluster, same folders, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers import CONFIGS, ROOT

from finetune_cli.workflows.sweep import RayOptions, load_sweep, run_sweep

pytest.importorskip("ray")
NAMES = ["mode=full_seed=0", "mode=full_seed=1", "mode=top_seed=0", "mode=top_seed=1"]


def write_sweep(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(CONFIGS / "smoke" / "layerwise.yaml"), "name": "tiny",
        "set": {"data.max_train_samples": 32, "data.max_eval_samples": 16, "train.epochs": 1},
        "grid": {"method.mode": ["full", "top"], "seed": [0, 1]}}, sort_keys=False))
    return path


def sweep_on_ray(path, runs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "finetune_cli", "sweep", str(path), "--runs-dir", str(runs),
                           "--launcher", "ray", "--workers", "2"], capture_output=True, text=True, env=env,
                          timeout=900)


def test_a_sweep_runs_as_ray_tasks_and_a_rerun_skips_every_completed_run(tmp_path):
    path, runs = write_sweep(tmp_path), tmp_path / "runs"
    first = sweep_on_ray(path, runs)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(first.stdout.split()) == sorted(["completed"] * 4 + [str(runs / "tiny" / n) for n in NAMES])
    for name in NAMES:
        folder = runs / "tiny" / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.yaml", "metrics.jsonl", "summary.json", "trained.safetensors"]
        assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    again = sweep_on_ray(path, runs)
    assert again.returncode == 0 and again.stdout.split()[::2] == ["done"] * 4
    assert "on Ray" not in again.stderr  # nothing left: no cluster started


def test_ray_cells_respect_the_lock_of_another_launcher(tmp_path):
    path, runs = write_sweep(tmp_path), tmp_path / "runs"
    (runs / "tiny").mkdir(parents=True)
    (runs / "tiny" / ".mode=top_seed=1.lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    result = sweep_on_ray(path, runs)
    assert result.returncode == 1, result.stderr[-3000:]  # a busy cell: the sweep is not finished
    assert "another launcher holds them" in result.stderr.strip().splitlines()[-1]
    outcomes = dict(zip(result.stdout.split()[1::2], result.stdout.split()[::2], strict=True))
    assert outcomes[str(runs / "tiny" / "mode=top_seed=1")] == "busy"
    assert sorted(outcomes.values()) == ["busy", "completed", "completed", "completed"]


def test_without_ray_the_local_launcher_is_untouched(tmp_path, monkeypatch):
    """run_sweep with no RayOptions never imports ray."""
    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` now raises ImportError
    sweep = load_sweep(write_sweep(tmp_path))
    from rich.console import Console

    outcomes = run_sweep(sweep, tmp_path / "runs", Console(stderr=True))
    assert [o for _, o in outcomes] == ["completed"] * 4
    with pytest.raises(ImportError):
        run_sweep(load_sweep(write_sweep(tmp_path)), tmp_path / "other", Console(stderr=True), ray=RayOptions())
