"""Helpers shared by the tests (imported as `from helpers import ...`; conftest.py only sets up pytest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from finetune_cli.cli import app
from finetune_cli.config_yaml import dump_yaml, safe_load
from finetune_cli.data.metrics import Evaluation

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def tiny_config(mode: str = "layerwise", **sections) -> dict:
    """A config dict for the tiny random BERT on 48 IMDB sample examples."""
    cfg = {
        "model": {"name": "tiny-random-bert", "max_length": 32},
        "data": {"dataset": "imdb", "source": "sample", "max_train_samples": 48, "max_eval_samples": 16},
        "method": {"mode": mode, "bottleneck": 8},
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-2},
        "seed": 0,
    }
    for key, values in sections.items():
        if isinstance(values, dict):
            cfg[key] = {**cfg.get(key, {}), **values}
        else:
            cfg[key] = values
    return cfg


def scripted(accuracy: float, loss: float | None = None, macro_f1: float | None = None) -> Evaluation:
    """An evaluation with the given scores (what a test scripts `train.evaluate` to return); the loss
    and macro-F1 default to values that rank evaluations the same way as the accuracy."""
    return Evaluation(loss=1.0 - accuracy if loss is None else loss,
                      scores={"accuracy": accuracy, "macro_f1": accuracy if macro_f1 is None else macro_f1},
                      per_class=(), confusion_matrix=[])


runner = CliRunner()
FAST = ["--set", "data.max_train_samples=48", "--set", "data.max_eval_samples=16", "--set", "train.epochs=1"]


def ftcli(*args: str):
    """`ftcli ARGS` in this process (typer's CliRunner)."""
    return runner.invoke(app, [str(a) for a in args])


def train_template_run(runs_dir: Path) -> Path:
    """One real tiny run (configs/smoke/full.yaml, FAST), to copy into runs with known summaries."""
    result = ftcli("train", CONFIGS / "smoke" / "full.yaml", "--runs-dir", runs_dir, *FAST)
    assert result.exit_code == 0, result.output
    return runs_dir / "full"


def copy_run(template: Path, folder: Path, mode: str, lr: float, seed: int, summary_values: dict) -> dict:
    """A copy of `template` recorded as (mode, learning rate, seed), its summary updated with
    `summary_values`; returns the summary."""
    shutil.copytree(template, folder)
    config = safe_load((folder / "config.yaml").read_text())
    config["method"]["mode"], config["train"]["learning_rate"], config["seed"] = mode, lr, seed
    (folder / "config.yaml").write_text(dump_yaml(config))
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(mode=mode, seed=seed, **summary_values)
    (folder / "summary.json").write_text(json.dumps(summary))
    return summary
