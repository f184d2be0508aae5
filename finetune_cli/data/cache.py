"""The data cache: checked and tokenized splits kept as Arrow files under $FTCLI_CACHE, keyed by
fingerprints of what decides their content (the source's files, the task, the tokenizer)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

CACHE_VERSION = "1"  # bump when what a cached file holds changes


def arrow_fingerprint(ds: Any) -> str | None:
    """What identifies an Arrow dataset's content: its cache files (name, size, time); None when it
    lives in memory only."""
    files = [Path(f["filename"]) for f in ds.cache_files]
    return digest([(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]) if files else None


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return digest([str(path.resolve()), stat.st_size, stat.st_mtime_ns])


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_map(ds: Any, function: Any, path: Path | None, **map_options: Any) -> tuple[Any, str]:
    """`ds.map(function)` in batches, its output replacing every column, kept in the Arrow file `path`
    for the next run (read back instead of computed when it exists; None: in memory, not kept).
    Returns (table, cache state: hit | miss | off). The fingerprint is always given, so that datasets
    never hashes the function's arguments (a tokenizer: slow, and it warns when it cannot)."""
    state = "off" if path is None else "hit" if path.exists() else "miss"
    table = ds.map(function, batched=True, remove_columns=ds.column_names, load_from_cache_file=True,
                   cache_file_name=None if path is None else str(path), keep_in_memory=path is None,
                   new_fingerprint=f"uncached-{uuid.uuid4().hex}" if path is None else path.stem, **map_options)
    return table, state


def cache_dir() -> Path:
    """Where ftcli keeps checked and tokenized splits: $FTCLI_CACHE, else ~/.cache/ftcli."""
    return Path(os.environ.get("FTCLI_CACHE") or Path.home() / ".cache" / "ftcli")


def cache_path(kind: str, key: str | None) -> Path | None:
    if key is None:
        return None
    folder = cache_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.arrow"
