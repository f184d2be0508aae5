"""`ftcli bench` on the tiny random BERT: structure of the JSON and table, consistent ratios and
FLOP counts. No timing assertions: only that the numbers exist and relate to each other."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from finetune_cli.bench import contenders as bench_contenders
from finetune_cli.cli import app
from finetune_cli.methods.registry import names_where

runner = CliRunner()
MODES = list(names_where("benched"))  # the default contenders
TINY = ["--model", "tiny-random-bert", "--seq", "16", "--batch", "4", "--steps", "2", "--warmup", "1",
        "--eval-batch", "8", "--bottleneck", "8", "--gemm-sizes", "64,128"]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = runner.invoke(app, ["bench", *TINY, "--no-memory", "--out", str(out)])  # memory: below
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_every_mode_and_the_reference_appear(tiny_bench):
    data, output = tiny_bench
    assert [r["name"] for r in data["rows"]] == ["reference", *MODES]
    assert [r["kind"] for r in data["rows"]] == ["reference"] + ["product"] * len(MODES)
    for name in ["reference", *MODES]:
        assert name in output
    assert "threads:" in output and "seq 16" in output and "batch 4" in output and "MFU" in output


def test_meta_records_the_setup(tiny_bench):
    meta = tiny_bench[0]["meta"]
    assert meta["model"] == "tiny-random-bert" and meta["dataset"] == "imdb" and meta["inputs"] == "examples"
    assert (meta["seq"], meta["batch"], meta["steps"], meta["warmup"], meta["eval_batch"]) == (16, 4, 2, 1, 8)
    assert meta["device"] == "cpu" and meta["threads"] >= 1 and meta["torch"] and meta["memory_method"]
    for precision, bound in tiny_bench[0]["gemm_bound"].items():
        assert bound["dtype"] == {"fp32": "float32", "bf16": "bfloat16"}[precision]
        assert [x["n"] for x in bound["shapes"]] == [64, 128]
        assert bound["peak_gflops_per_s"] == max(x["gflops"] for x in bound["shapes"])


def test_trainable_params_are_the_products(tiny_bench):
    rows = {r["name"]: r for r in tiny_bench[0]["rows"]}
    # the same counts `ftcli train` reports for the tiny BERT with bottleneck 8 (tests/test_cli.py)
    assert rows["full"]["trainable_params"] == rows["reference"]["trainable_params"] == 1_011_426
    assert rows["top"]["trainable_params"] == 618
    assert rows["layerwise"]["trainable_params"] == 2_594
    assert rows["head"]["trainable_params"] == 32 * 2 + 2


def test_ratios_are_consistent(tiny_bench):
    rows = {r["name"]: r for r in tiny_bench[0]["rows"]}
    full, ref = rows["full"], rows["reference"]
    assert full["train_ratio_to_full"] == 1.0
    assert ref["train_ratio_to_reference"] == 1.0
    for r in rows.values():
        assert len(r["train_step_seconds_all"]) == 2
        assert r["train_examples_per_s"] == pytest.approx(4 / r["train_step_seconds"]["median"])
        assert r["train_ratio_to_full"] == pytest.approx(r["train_examples_per_s"] / full["train_examples_per_s"])
        assert r["train_ratio_to_reference"] == pytest.approx(r["train_examples_per_s"] / ref["train_examples_per_s"])
        assert r["eval_ratio_to_reference"] == pytest.approx(r["eval_examples_per_s"] / ref["eval_examples_per_s"])
        assert r["memory"] is None and r["peak_train_memory_mb"] is None and r["memory_ratio_to_reference"] is None
        bound = tiny_bench[0]["gemm_bound"]["fp32"]["peak_gflops_per_s"]
        assert r["train_mfu"] == pytest.approx(min(1.0, r["train_gflops_per_s"] / bound)) and r["train_mfu"] <= 1.0
        assert r["mfu_bound_raised"] is (r["train_gflops_per_s"] > bound or r["eval_gflops_per_s"] > bound)
        assert math.isfinite(r["first_loss"]) and math.isfinite(r["last_loss"])


def test_flop_counts_follow_the_formula(tiny_bench):
    rows = {r["name"]: r["flops"] for r in tiny_bench[0]["rows"]}
    full = rows["full"]
    assert rows["reference"] == full
    assert full["train_step"] == 3 * full["forward"]  # everything trains: backward = 2x forward
    # attention (QK^T and PV): 4 * B * s^2 * d per layer, 2 layers
    assert full["attention_forward"] == 4 * 4 * 16**2 * 32 * 2
    assert rows["head"]["backward"] == 2 * 4 * 32 * 2  # only the classifier's weight gradient
    assert rows["head"]["forward"] == full["forward"]
    # adapters add forward work; frozen layers need only the input-gradient half
    assert rows["layerwise"]["forward"] > full["forward"]
    assert rows["layerwise"]["backward"] < full["backward"]
    assert rows["top"]["backward"] < rows["layerwise"]["backward"]


def test_memory_children_and_no_full(tmp_path):
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["bench", *TINY, "--modes", "head", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"] for r in rows] == ["reference", "head"]
    assert "head: the uncached step" in " ".join(result.output.split())  # says what the row measures
    assert all(r["train_ratio_to_full"] is None for r in rows)  # full was not measured
    for r in rows:  # one fresh child process each
        assert set(r["memory"]) >= {"peak_train_mb", "peak_rss_mb", "baseline_mb", "model_loaded_mb"}
        assert r["peak_train_memory_mb"] == r["memory"]["peak_train_mb"]
        assert r["memory"]["peak_rss_mb"] >= r["memory"]["baseline_mb"] > 0
    assert rows[0]["memory_ratio_to_reference"] == 1.0
    assert rows[1]["memory_ratio_to_reference"] == pytest.approx(
        rows[1]["peak_train_memory_mb"] / rows[0]["peak_train_memory_mb"])


def test_unknown_mode_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["bench", *TINY, "--modes", "full,bogus", "--out", str(tmp_path / "b.json")])
    assert result.exit_code == 2
    assert "--modes" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b.json").exists()


def test_short_texts_are_packed_to_exactly_seq_tokens():
    tokenizer = bench_contenders.tokenizer_for("tiny-random-bert")
    inputs = bench_contenders.make_inputs(tokenizer, "snli", 64, 4, 8)  # SNLI pairs are ~26 tokens
    assert inputs.how == "packed" and inputs.num_labels == 3
    for b in [*inputs.train, inputs.eval]:
        assert b["input_ids"].shape[1] == 64 and bool(b["attention_mask"].all())
    assert inputs.eval["input_ids"].shape[0] == 8


class FakeClock:
    """A clock that advances `tick` seconds per reading: every timed GEMM takes exactly `tick`."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_the_gemm_bound_is_the_best_rate_and_mfu_never_exceeds_it():
    import torch

    from finetune_cli.bench.measure import gemm_peak, mfu

    bound = gemm_peak(torch.device("cpu"), torch.float32, (32, 64), reps=3, clock=FakeClock(0.5))
    assert [x["gflops"] for x in bound["shapes"]] == [2 * 32**3 / 0.5 / 1e9, 2 * 64**3 / 0.5 / 1e9]
    assert bound["peak_gflops_per_s"] == 2 * 64**3 / 0.5 / 1e9
    peak = bound["peak_gflops_per_s"]
    assert mfu(peak / 4, bound) == (0.25, False)
    assert mfu(peak * 3, bound) == (1.0, True)  # a step "faster than the GEMMs": 100%, flagged, never 300%


def test_bad_gemm_sizes_are_one_line():
    result = runner.invoke(app, ["bench", *TINY[:-2], "--gemm-sizes", "8,x"])
    assert result.exit_code == 2 and "--gemm-sizes: got '8,x', expected comma-separated integers 16..65536" in \
        result.output


def test_every_contender_is_timed_in_every_precision(tmp_path):
    out = tmp_path / "b.json"
    result = runner.invoke(app, ["bench", *TINY, "--modes", "top,full", "--no-memory", "--precision", "bf16,fp32",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {(r["name"], r["precision"]): r for r in data["rows"]}
    assert list(rows) == [(n, p) for p in ("fp32", "bf16") for n in ("reference", "top", "full")]  # fp32 first
    for (name, precision), r in rows.items():
        fp32 = rows[(name, "fp32")]
        assert r["train_ratio_to_fp32"] == pytest.approx(r["train_examples_per_s"] / fp32["train_examples_per_s"])
        assert r["train_ratio_to_reference"] == pytest.approx(
            r["train_examples_per_s"] / rows[("reference", precision)]["train_examples_per_s"])
        bound = data["gemm_bound"][precision]["peak_gflops_per_s"]
        assert r["train_mfu"] == pytest.approx(min(1.0, r["train_gflops_per_s"] / bound))
        assert math.isfinite(r["last_loss"])
    assert "× fp32" in result.output and "bf16" in result.output


def test_an_unknown_precision_is_one_line():
    result = runner.invoke(app, ["bench", *TINY, "--precision", "fp8"])
    assert result.exit_code == 2 and "--precision: got 'fp8', expected a comma-separated list of fp32, bf16" in \
        result.output
