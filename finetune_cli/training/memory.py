"""Peak memory of a stretch of this process: what a run (or a benchmark step) needed at most.

`ru_maxrss` alone is a lifetime peak: in `ftcli sweep`, every run would report the largest run
before it. On Linux the kernel's peak-RSS counter can be reset (`/proc/self/clear_refs`), so the
peak of one stretch is VmHWM after the reset; on a GPU, torch's own peak counter is reset.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import sys
from pathlib import Path

import torch

CPU_RESET = "peak resident set size (VmHWM) since the run started training"
CPU_LIFETIME = "peak resident set size of the process so far (ru_maxrss; VmHWM could not be reset)"
CUDA = "torch.cuda.max_memory_allocated since the run started training"


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def malloc_trim() -> None:
    """Give freed heap back to the OS (glibc), so RSS reflects live memory."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_peak(device: str = "cpu") -> bool:
    """Start a new peak from the memory in use now; False if only the lifetime peak is available."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return True
    malloc_trim()  # so the new peak starts from live memory
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kib("VmHWM") is not None


def peak_mb(device: str, was_reset: bool) -> tuple[float, str]:
    """(peak MiB since `reset_peak`, how it was measured)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, CUDA
    hwm = status_kib("VmHWM") if was_reset else None
    if hwm is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return maxrss / (2**20 if sys.platform == "darwin" else 1024), CPU_LIFETIME
    return hwm / 1024, CPU_RESET
