"""`ftcli bench --profile`: each contender's training step split by op category (torch.profiler)."""

from __future__ import annotations

import json

import pytest
from helpers import ftcli

from finetune_cli.bench.profiling import CATEGORIES


def test_profile_splits_each_step_into_categories_and_finds_adapters_by_type(tmp_path):
    out = tmp_path / "bench.json"
    result = ftcli("bench", "--model", "tiny-random-bert", "--modes", "full,layerwise,lora", "--peers", "peft",
                   "--seq", "16", "--batch", "4", "--bottleneck", "8", "--steps", "1", "--warmup", "1", "--no-memory",
                   "--gemm-sizes", "64", "--profile", "2", "--precision", "fp32,bf16", "--out", out)
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text())["profile"]
    assert sorted(found) == ["full", "layerwise", "lora", "peft-lora", "reference"]
    for name, by_precision in found.items():
        assert sorted(by_precision) == ["bf16", "fp32"]
        for p in by_precision.values():
            assert set(p["shares"]) == set(CATEGORIES) and sum(p["shares"].values()) == pytest.approx(1.0)
            assert p["steps"] == 2 and p["profiled_ms_per_step"] > 0
            assert p["shares"]["GEMM"] > 0.05 and p["shares"]["dropout"] > 0  # training: dropout is on
            assert p["shares"]["LayerNorm"] > 0 and p["shares"]["softmax"] > 0
            assert (p["shares"]["adapter ops"] > 0) == (name in ("layerwise", "lora", "peft-lora")), name
    assert all(found[n]["fp32"]["shares"]["optimizer"] > 0 for n in found)  # the AdamW step is seen
    assert "where a training step's time goes" in result.output
