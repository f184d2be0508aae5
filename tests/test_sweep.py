"""`ftcli sweep`: deterministic names, grid x rules, dry run, resumability."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import CONFIGS
from test_cli import ftcli

from finetune_cli.errors import ConfigError
from finetune_cli.sweep import load_sweep


def write_sweep(tmp_path, **extra):
    data = {"base": str(CONFIGS / "smoke" / "layerwise.yaml"), "name": "tiny",
            "set": {"data.max_train_samples": 32, "data.max_eval_samples": 16, "train.epochs": 1},
            "grid": {"method.mode": ["full", "top"], "seed": [0, 1]},
            "rules": [{"if": {"method.mode": "full"}, "set": {"train.learning_rate": 3.0e-5}}], **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_names_and_rules(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    names = ["mode=full_seed=0", "mode=full_seed=1", "mode=top_seed=0", "mode=top_seed=1"]
    assert [r.name for r in sweep.runs] == names
    lrs = {r.name: r.cfg.train.learning_rate for r in sweep.runs}
    assert lrs["mode=full_seed=1"] == 3e-5 and lrs["mode=top_seed=0"] == 1e-3
    assert all(r.cfg.data.max_train_samples == 32 for r in sweep.runs)


def test_every_run_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="method.bottleneck: got 0"):
        load_sweep(write_sweep(tmp_path, grid={"method.bottleneck": [4, 0]}))
    with pytest.raises(ConfigError, match="grid.seed: expected a non-empty list"):
        load_sweep(write_sweep(tmp_path, grid={"seed": 3}))
    with pytest.raises(ConfigError, match="runs: unknown sweep key"):
        load_sweep(write_sweep(tmp_path, runs=1))


@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_load(path):
    sweep = load_sweep(path)
    assert len(sweep.runs) >= 8 and path.read_text().startswith(f"# ftcli sweep configs/sweeps/{path.name}")


def test_sweep_runs_then_skips_completed_and_redoes_broken(tmp_path):
    path, runs = write_sweep(tmp_path), tmp_path / "runs"
    result = ftcli("sweep", path, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("completed") == 4
    summary = runs / "tiny" / "mode=top_seed=1" / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "interrupted"}))
    dry = ftcli("sweep", path, "--runs-dir", runs, "--dry-run")
    expected = [("done", "mode=full_seed=0"), ("done", "mode=full_seed=1"), ("done", "mode=top_seed=0"),
                ("resume", "mode=top_seed=1")]
    assert dry.stdout.split() == [x for status, name in expected for x in (status, str(runs / "tiny" / name))]
    again = ftcli("sweep", path, "--runs-dir", runs)
    assert again.exit_code == 0 and again.stdout.count("completed") == 1 and again.stdout.count("done") == 3
    rows = json.loads(ftcli("compare", runs, "--format", "json").stdout)
    assert sorted((r["mode"], r["n"]) for r in rows) == [("full", 2), ("top", 2)]
    assert all(r["inference_accuracy_sem"] is not None for r in rows)
