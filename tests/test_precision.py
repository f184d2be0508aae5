"""train.mixed_precision: auto (the default): bf16 where this machine does it natively, else fp32;
printed, recorded in the summary, shown by compare, kept on resume, used by predict and ablate."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import CONFIGS, FAST, ftcli

from finetune_cli.training import devices
from finetune_cli.training.devices import cpu_flags, native_bf16, resolve_precision

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\nmodel name\t: X\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


@pytest.fixture
def detect(monkeypatch):
    """Detection from the hardware (the test session's FTCLI_NATIVE_BF16=0 removed), on a CPU-only machine."""
    monkeypatch.delenv(devices.FORCE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(("cpuinfo", "native", "why"), [
    (X86, True, "this CPU has AVX512-BF16"),
    (ARM, True, "this CPU has BF16"),
    (OLD, False, "this CPU has no native bf16 (AMX, AVX512-BF16)"),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, detect, cpuinfo, native, why):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert native_bf16(tmp_path / "cpuinfo") == (native, why)


def test_cpu_flags_of_a_machine_without_proc_cpuinfo_are_none(tmp_path):
    assert cpu_flags(tmp_path / "absent") == set()
    assert {"amx_tile", "avx512_bf16"} <= cpu_flags(_write(tmp_path, X86))


def _write(folder, text):
    (folder / "cpuinfo").write_text(text)
    return folder / "cpuinfo"


def test_auto_resolves_by_the_hardware_and_explicit_values_stay(monkeypatch):
    monkeypatch.setenv(devices.FORCE_ENV, "1")
    assert resolve_precision("auto") == ("bf16", "FTCLI_NATIVE_BF16=1")
    monkeypatch.setenv(devices.FORCE_ENV, "0")
    assert resolve_precision("auto") == ("no", "FTCLI_NATIVE_BF16=0")
    assert resolve_precision("bf16") == ("bf16", None) and resolve_precision("no") == ("no", None)


def test_auto_is_printed_recorded_compared_resumed_and_predicted_in(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.FORCE_ENV, "1")  # as on an AMX / AVX512-BF16 CPU
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", "auto", *FAST,
                   "--set", "train.cache_frozen_encoder=false")
    assert result.exit_code == 0, result.output
    assert "train.mixed_precision: auto -> bf16 (FTCLI_NATIVE_BF16=1; `no` keeps fp32)" in result.output
    run = tmp_path / "auto"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["mixed_precision"] == "bf16" and summary["schema_version"] == 6
    assert "mixed_precision: auto" in (run / "config.yaml").read_text()  # the config as written; resolved in summary

    explicit = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", "fp32", *FAST,
                     "--set", "train.cache_frozen_encoder=false", "--set", "train.mixed_precision=no")
    assert explicit.exit_code == 0 and "train.mixed_precision: auto" not in explicit.output
    assert json.loads((tmp_path / "fp32" / "summary.json").read_text())["mixed_precision"] == "no"

    rows = json.loads(ftcli("compare", tmp_path, "--format", "json").stdout)
    assert sorted(r["precision"] for r in rows) == ["bf16", "fp32"]  # two settings, not two seeds of one
    assert " prec " in ftcli("compare", tmp_path).output  # shown when a run is not fp32

    monkeypatch.setenv(devices.FORCE_ENV, "0")  # another machine: the recorded run is still the same setting
    again = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", "auto", *FAST,
                  "--set", "train.cache_frozen_encoder=false", "--resume")
    assert again.exit_code == 0 and "already completed" in again.output, again.output

    text = sum((["--text", t] for t in ["a quiet film about a lighthouse keeper", "awful, just awful"]), [])

    def predicted(precision: str) -> list[dict]:
        return [json.loads(line) for line in ftcli("predict", run, *text, "--precision", precision).stdout.splitlines()]

    as_run_elsewhere = predicted("run")  # a machine without native bf16 predicts the bf16 run in fp32
    monkeypatch.setenv(devices.FORCE_ENV, "1")
    as_run, as_bf16, as_fp32 = predicted("run"), predicted("bf16"), predicted("fp32")
    assert as_run == as_bf16  # a bf16 run predicts in bf16, as it was tested
    assert as_fp32 != as_bf16  # and --precision fp32 is a different computation
    assert as_run_elsewhere == as_fp32


def test_predict_batches_by_length_and_keeps_the_input_order(tmp_path):
    result = ftcli("train", CONFIGS / "smoke" / "full.yaml", "--runs-dir", tmp_path, *FAST)
    assert result.exit_code == 0, result.output
    texts = ["short", "a much longer text " * 6, "mid length text here", "x", "another long one " * 4]
    args = sum((["--text", t] for t in texts), [])
    one, many = ([json.loads(line) for line in ftcli("predict", tmp_path / "full", *args, "--batch-size", n)
                  .stdout.splitlines()] for n in ("1", "2"))
    assert [p["index"] for p in many] == list(range(len(texts)))
    for a, b in zip(one, many, strict=True):  # padding changes nothing but rounding
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


def test_a_run_folder_from_before_auto_resumes_as_fp32(tmp_path, monkeypatch):
    """Folders written before schema 6 say `mixed_precision: no` in config.yaml and nothing in the
    summary; the same config (now `auto` by default) is the same setting, on any machine."""
    result = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", "old", *FAST)
    assert result.exit_code == 0, result.output
    run = tmp_path / "old"
    summary = json.loads((run / "summary.json").read_text())
    del summary["mixed_precision"]
    summary["schema_version"] = 5
    (run / "summary.json").write_text(json.dumps(summary))
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("mixed_precision: auto", "mixed_precision: 'no'"))
    monkeypatch.setenv(devices.FORCE_ENV, "1")  # even where auto would pick bf16 now
    again = ftcli("train", CONFIGS / "smoke" / "top.yaml", "--runs-dir", tmp_path, "--name", "old", *FAST, "--resume")
    assert again.exit_code == 0 and "already completed" in again.output, again.output
    rows = json.loads(ftcli("compare", tmp_path, "--format", "json").stdout)
    assert [r["precision"] for r in rows] == ["fp32"]
