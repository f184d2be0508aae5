"""pytest set-up: every test runs offline (on the tiny random BERT and the bundled samples; see helpers.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# the checked/tokenized caches (ftcli's and datasets') of this test session, not the user's
_CACHES = tempfile.mkdtemp(prefix="ftcli-test-cache-")
os.environ["FTCLI_CACHE"] = os.path.join(_CACHES, "ftcli")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHES, "datasets")
# train.mixed_precision: auto picks fp32 in tests on any machine (the exact equivalences are fp32's;
# a machine with native bf16 would pick bf16); test_precision.py sets it to test auto itself
os.environ["FTCLI_NATIVE_BF16"] = "0"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
