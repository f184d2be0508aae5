"""Shared helpers: every test runs offline on the tiny random BERT and the bundled samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

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


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
