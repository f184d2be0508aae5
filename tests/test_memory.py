"""A run records its own peak memory, not the largest thing the process did before it (sweeps)."""

from __future__ import annotations

import resource
import sys

import pytest
import torch
from helpers import tiny_config

from finetune_cli.config import config_from_dict
from finetune_cli.runs.folder import RunFolder
from finetune_cli.training import memory as memory
from finetune_cli.workflows.train import run_and_record


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_a_runs_peak_memory_excludes_what_the_process_did_before(tmp_path):
    spike = torch.ones(128 * 2**20)  # 512 MiB, written: resident
    del spike
    lifetime_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = run_and_record(config_from_dict(tiny_config("top")), RunFolder.create(tmp_path, "run"))
    assert summary.outcome.peak_memory_method == memory.CPU_RESET
    assert 0 < summary.outcome.peak_memory_mb < lifetime_mb - 256


def test_without_a_reset_the_lifetime_peak_is_reported_as_such():
    mb, method = memory.peak_mb("cpu", was_reset=False)
    assert method == memory.CPU_LIFETIME and mb > 0
