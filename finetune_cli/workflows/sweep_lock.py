"""The lock file that claims one sweep cell for one launcher (several `ftcli sweep` processes, shells
or machines sharing the runs folder, may work on one sweep at once)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[str | None]:
    """Hold the lock file `path` for the duration (yields None), or yield who holds it.

    O_CREAT | O_EXCL is atomic on local disks and on NFS v3+ (unlike fcntl locks, which many shared
    file systems fake), so of two launchers exactly one creates the file. A lock whose owner ran on
    this host and is gone (killed with -9, machine rebooted) is stale and taken over; one from another
    host is respected (delete it by hand if that machine is gone). Taking over a stale lock is not
    atomic: two launchers on one host that find the same stale lock in the same instant may both run."""
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_owner(path)
            if _is_stale(holder, path):
                path.unlink(missing_ok=True)
                continue
            yield f"{holder.get('host', '?')} pid {holder.get('pid', '?')}"
            return
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
        try:
            yield None
        finally:
            path.unlink(missing_ok=True)
        return
    yield "another launcher (its lock came back while taking over a stale one)"


def _read_owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written right now, or gone: treat as held
    return owner if isinstance(owner, dict) else {}


EMPTY_LOCK_SECONDS = 10.0  # a lock still without its owner after this long lost its launcher in between


def _is_stale(owner: dict, path: Path) -> bool:
    """Owned by a process of this host that no longer exists, or whose pid now names a process
    started after the lock was taken (a recycled pid); or without an owner after EMPTY_LOCK_SECONDS
    (a launcher killed between creating the file and writing to it leaves it empty)."""
    if not owner:
        try:
            return time.time() - path.stat().st_mtime > EMPTY_LOCK_SECONDS
        except OSError:
            return False  # gone meanwhile: the next attempt creates it
    pid, since = owner.get("pid"), owner.get("since")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    import psutil  # accelerate's dependency; here only when a lock is contested

    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # e.g. access denied: alive, another user's
        return False
    return isinstance(since, (int, float)) and started > since + 1.0  # 1 s: create_time's rounding
