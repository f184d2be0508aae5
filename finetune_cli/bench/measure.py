"""What `ftcli bench` measures besides time: matmul FLOPs counted with hooks, the device's upper bound
per precision (the best rate of large square GEMMs), and peak memory in one fresh child process per
contender (`python -m finetune_cli.bench.measure`)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..bench.contenders import Batch, build, make_inputs, tokenizer_for
from ..errors import FtcliError
from ..methods.adapters import encoder_layers
from ..models.backbones import quiet_transformers
from ..models.families import family_or_none
from ..training import memory

RESULT_MARK = "FTCLI_BENCH_RESULT "  # the line a memory child prints its result on


# ----------------------------------------------------------------------------------------------
# FLOPs: matmul FLOPs counted on the model itself with forward hooks


def count_flops(model: nn.Module, batch: Batch) -> dict[str, float]:
    """Matmul FLOPs of one training step on `batch`, counted with hooks during one forward.

    Per nn.Linear with r input rows, i inputs, o outputs: forward 2·r·i·o; backward 2·r·i·o for
    the input gradient if the input requires grad (something upstream trains) plus 2·r·i·o for
    the weight gradient if the weight trains. Per self-attention (B batch, s tokens, d = heads ·
    head size): forward QKᵀ and PV = 4·B·s²·d; backward 2× that when Q/K/V require grad.
    Elementwise ops, softmax, LayerNorm and embedding look-ups are not counted."""
    fwd = bwd = attn_fwd = attn_bwd = 0.0
    handles = []

    def linear_hook(mod: nn.Linear, args, output):
        nonlocal fwd, bwd
        x = args[0]
        f = 2.0 * x.numel() / x.shape[-1] * mod.in_features * mod.out_features
        fwd += f
        bwd += f * (int(x.requires_grad) + int(mod.weight.requires_grad))

    def attention_hook(mod: nn.Module, args, output):
        """Q K^T and P V of one layer, from its input [B, s, d]: 2 matmuls of 2*B*s*s*d each. Hooked
        on every layer of the architecture table, so it counts for every family (not just BERT's names)."""
        nonlocal attn_fwd, attn_bwd
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            return
        b, s, d = x.shape
        f = 4.0 * b * s * s * d
        attn_fwd += f
        attn_bwd += 2 * f * int(x.requires_grad or any(p.requires_grad for p in mod.parameters()))

    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    family = family_or_none(model.config.model_type)  # a family the table does not know: attention not counted
    for _, layer in encoder_layers(model, family) if family else ():
        handles.append(layer.register_forward_hook(attention_hook))
    try:
        with torch.enable_grad():
            model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for h in handles:
            h.remove()
    n = batch["input_ids"].shape[0]
    forward = fwd + attn_fwd
    return {"forward": forward, "backward": bwd + attn_bwd, "train_step": forward + bwd + attn_bwd,
            "forward_per_example": forward / n, "attention_forward": attn_fwd}


# Square GEMM sizes whose best rate bounds what a device does at a precision (`ftcli bench --gemm-sizes`)
GEMM_SIZES = {"cpu": (1024, 2048, 4096), "cuda": (4096, 8192, 16384)}


def gemm_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...], reps: int = 5,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """The device's upper bound at `dtype`: the best rate (fastest of `reps`, after two untimed runs)
    of square torch.mm [n,n]@[n,n] on torch's threads (those the benchmark uses), over `sizes`; large
    GEMMs are the most efficient work a device does, so a model step (GEMMs and the rest) stays below it."""
    shapes = []
    for n in sizes:
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        c = torch.empty(n, n, device=device, dtype=dtype)
        best = math.inf
        for i in range(reps + 2):
            sync(device)
            started = clock()
            torch.mm(a, b, out=c)
            sync(device)
            best = min(best, clock() - started) if i >= 2 else best
        shapes.append({"n": n, "gflops": 2.0 * n ** 3 / max(best, 1e-12) / 1e9})
    return {"dtype": str(dtype).removeprefix("torch."), "shapes": shapes,
            "peak_gflops_per_s": max(x["gflops"] for x in shapes)}


def mfu(achieved_gflops: float, peak: dict[str, Any]) -> tuple[float, bool]:
    """Model FLOP utilisation against the GEMM bound, and whether the bound had to be raised: a step
    faster than the measured GEMMs means they were measured under interference (load), and the
    step's own rate is then the best known bound, so MFU is 100%, never more."""
    ratio = achieved_gflops / peak["peak_gflops_per_s"]
    return min(ratio, 1.0), ratio > 1.0


# ----------------------------------------------------------------------------------------------
# Timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[Any], Any], arg: Any, device: torch.device) -> tuple[float, Any]:
    sync(device)
    t = time.perf_counter()
    value = fn(arg)
    sync(device)
    return time.perf_counter() - t, value


def summarize(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "q1": q[0], "q3": q[2]}



# ----------------------------------------------------------------------------------------------
# Peak memory: one fresh child process per contender

MEMORY_METHOD_CPU = (
    "fresh child process per contender; baseline = RSS after imports and inputs, before the model; "
    "one warm-up step (optimizer state allocated), malloc_trim, peak-RSS counter reset "
    "(/proc/self/clear_refs 5), then the measured steps; peak_train = VmHWM - baseline")
MEMORY_METHOD_CUDA = ("fresh child process per contender; one warm-up step, reset_peak_memory_stats, "
                      "measured steps; peak_train = torch.cuda.max_memory_allocated")


def _import_everything() -> None:
    """Import, before the baseline, what the module imports above leave for first use: transformers
    loads the BERT modeling code only when a model is built."""
    import transformers.models.bert.modeling_bert  # noqa: F401 - imported for its memory, on purpose


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: build one contender, train, report its peak memory (MiB)."""
    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    tmp = Path(spec["tmp"])
    inputs = make_inputs(tokenizer_for(spec["model"]), spec["dataset"], spec["seq"], spec["batch"], spec["eval_batch"])
    batches = [{k: v.to(dev) for k, v in b.items()} for b in inputs.train]
    _import_everything()  # code is not what we measure: import all of it before the baseline
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # start the thread pool before the baseline
    cuda = dev.type == "cuda"
    if not cuda:
        memory.malloc_trim()
    baseline = torch.cuda.memory_allocated() if cuda else memory.status_kib("VmRSS") * 1024
    c = build(spec["name"], spec["model"], spec["bottleneck"], spec["num_labels"], spec["seed"], dev, tmp)
    loaded = torch.cuda.memory_allocated() if cuda else memory.status_kib("VmRSS") * 1024
    c.model.train()
    c.step(batches[0])
    sync(dev)
    reset = memory.reset_peak(str(dev))
    for i in range(spec["steps"]):
        c.step(batches[(i + 1) % len(batches)])
    sync(dev)
    peak = memory.peak_mb(str(dev), reset)[0] * 2**20
    mib = 2**20
    return {"peak_train_mb": (peak - baseline) / mib, "peak_rss_mb": peak / mib, "baseline_mb": baseline / mib,
            "model_loaded_mb": (loaded - baseline) / mib, "peak_reset": reset}


def measure_memory_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    proc = subprocess.run([sys.executable, "-m", "finetune_cli.bench.measure"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise FtcliError(f"bench: the memory child for {spec['name']} failed (exit {proc.returncode}): {tail}")


if __name__ == "__main__":  # the memory child: spec as JSON on stdin, result on one marked line
    quiet_transformers()
    print(RESULT_MARK + json.dumps(memory_child(json.loads(sys.stdin.read()))), flush=True)
