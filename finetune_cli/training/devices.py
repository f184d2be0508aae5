"""Where the loop runs: accelerate's process state and Accelerator (CPU, one GPU, or one rank of
several), and seeding."""

from __future__ import annotations

import os
from pathlib import Path

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


# CPU flags (/proc/cpuinfo) of native bf16 matrix maths, which oneDNN uses for torch's bf16 matmuls:
# x86 AMX and AVX512-BF16, Arm's BF16 extension. Without them bf16 is emulated and slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
FORCE_ENV = "FTCLI_NATIVE_BF16"  # 0 / 1: take this machine as without / with native bf16 (tests, odd CPUs)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`); empty where /proc/cpuinfo is absent (macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    lines = [line.split(":", 1) for line in text.splitlines() if ":" in line]
    return {flag for key, value in lines if key.strip() in ("flags", "Features") for flag in value.split()}


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[bool, str]:
    """Whether this machine does bf16 natively, and why (the words printed with the choice)."""
    forced = os.environ.get(FORCE_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"{FORCE_ENV}={forced}"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        native = torch.cuda.is_bf16_supported(including_emulation=False)  # not the emulated bf16 of a T4 / V100
        return (True, f"{name} does bf16") if native else (False, f"{name}: no native bf16")
    found = [f for f in CPU_BF16_FLAGS if f in cpu_flags(cpuinfo)]
    if found:
        return True, f"this CPU has {found[0].upper().replace('_', '-')}"
    return False, "this CPU has no native bf16 (AMX, AVX512-BF16)"


def resolve_precision(requested: str) -> tuple[str, str | None]:
    """`train.mixed_precision` as run here: auto is bf16 where the hardware does it natively, else no
    (fp32); the reason is returned for auto (None otherwise). The same machine always picks the same."""
    if requested != "auto":
        return requested, None
    native, why = native_bf16()
    return ("bf16" if native else "no"), why


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    set_seed(seed)
