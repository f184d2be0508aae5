"""`ftcli bench --profile`: where a contender's training step spends its time, from torch.profiler.

Each profiled op's self time goes to one category. An op inside an adapter (ftcli's bottleneck
adapters and PEFT's LoRA branches, found by type; their forward is scoped with a record_function,
their backward found through the autograd sequence numbers of those forward ops) is "adapter ops";
an op under torch's `Optimizer.step` scope, or a foreach / fused optimizer kernel (clipping, AdamW),
is "optimizer"; any other op goes to the innermost category that names it or an op around it (a
mask multiply inside `aten::dropout` is dropout; a batched GEMM inside attention is GEMM); the rest
is "other" (elementwise adds, views, copies, the loss). torch.profiler is used, not hand timing,
because it sees every op of the backward pass too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..methods.adapters import Adapter
from ..runs.artifacts import autocast
from .contenders import Batch, Contender

SCOPE = "ftcli.adapter"
# category -> lower-case substrings of op names (forward aten ops and autograd backward nodes)
RULES = (
    ("dropout", ("dropout", "bernoulli", "maskedscale")),  # torch's, and models/dropout.py's (its backward node)
    ("softmax", ("softmax",)),
    ("LayerNorm", ("layer_norm", "layernorm")),
    ("GELU", ("gelu",)),
    ("GEMM", ("aten::mm", "addmm", "bmm", "aten::matmul", "aten::linear", "mmbackward")),
    ("attention (rest)", ("scaled_dot_product",)),
    ("embedding", ("embedding",)),
    ("optimizer", ("optimizer.", "_foreach", "_fused_adam", "clip_grad")),
)
CATEGORIES = ("GEMM", "attention (rest)", "dropout", "softmax", "LayerNorm", "GELU", "embedding", "adapter ops",
              "optimizer", "other")


def adapter_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose ops are "adapter ops": ftcli's Adapter, and PEFT LoRA's A, B and dropout."""
    from peft.tuners.lora import LoraLayer

    found: list[nn.Module] = [m for m in model.modules() if isinstance(m, Adapter)]
    for layer in (m for m in model.modules() if isinstance(m, LoraLayer)):
        found += [m for part in (layer.lora_A, layer.lora_B, layer.lora_dropout) for m in part.values()]
    return found


@contextmanager
def scoped(modules: list[nn.Module]) -> Iterator[None]:
    """Each module's forward inside a record_function named SCOPE."""
    open_scopes: list[Any] = []

    def enter(module, args):
        open_scopes.append(torch.profiler.record_function(SCOPE).__enter__())

    def leave(module, args, output):
        open_scopes.pop().__exit__(None, None, None)

    handles = [h for m in modules for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def chain(event) -> list:
    """The event and the events around it, innermost first."""
    found = []
    while event is not None:
        found.append(event)
        event = event.cpu_parent
    return found


def category(events: list, adapter_seqs: set[int]) -> str:
    names = [e.name.lower() for e in events]
    if any(e.name == SCOPE or ("evaluate_function" in e.name and e.sequence_nr in adapter_seqs) for e in events):
        return "adapter ops"
    if any(n.startswith("optimizer.") for n in names):
        return "optimizer"
    for name in names:
        for cat, needles in RULES:
            if any(needle in name for needle in needles):
                return cat
    return "other"


def shares(events: list, key: str) -> dict[str, float]:
    """Each category's share of the ops' self time `key` (fractions summing to 1)."""
    chains = [(e, chain(e)) for e in events]
    adapter_seqs = {e.sequence_nr for e, c in chains
                    if e.sequence_nr >= 0 and "evaluate_function" not in e.name and any(x.name == SCOPE for x in c)}
    total = {cat: 0.0 for cat in CATEGORIES}
    for e, c in chains:
        total[category(c, adapter_seqs)] += getattr(e, key)
    whole = sum(total.values()) or 1.0
    return {cat: t / whole for cat, t in total.items()}


def profile_step(c: Contender, batches: list[Batch], device: torch.device, precision: str,
                 steps: int) -> dict[str, Any]:
    """Profile `steps` training steps of an in-process contender: category shares and ms per step."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    c.model.train()
    with scoped(adapter_modules(c.model)), torch.profiler.profile(activities=activities) as prof:
        for i in range(steps):
            with autocast(device, precision):
                c.step(batches[i % len(batches)])
    # the ops (CPU-side events, whose device time includes their kernels), not the kernels again
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return {"shares": shares(events, key), "steps": steps,
            "profiled_ms_per_step": sum(getattr(e, key) for e in events) / 1000 / steps}
