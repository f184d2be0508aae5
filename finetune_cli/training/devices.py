"""Where the loop runs: accelerate's process state and Accelerator (CPU, one GPU, or one rank of
several), and seeding."""

from __future__ import annotations

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed


def distributed_state():
    """accelerate's process state; without CUDA, several processes (torchrun) use gloo on the CPU."""
    return PartialState(cpu=not torch.cuda.is_available())


def distributed_accelerator(mixed_precision: str = "no", grad_accumulation_steps: int = 1):
    """An accelerate Accelerator for this process (CPU, one GPU, or one rank of several). Its
    precision is per run: accelerate keeps one AcceleratorState per process and refuses another
    precision, so a sweep or tune whose runs differ in train.mixed_precision resets it between them
    (the process group, PartialState, is kept)."""
    distributed_state()
    state = AcceleratorState._shared_state  # accelerate's singleton: empty until an Accelerator exists
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available(),
                       gradient_accumulation_steps=grad_accumulation_steps)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    set_seed(seed)
