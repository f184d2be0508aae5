"""Stage 1, source -> raw splits: the bundled sample, the Hugging Face Hub (or its cache), a local
folder of split files, a `save_to_disk` folder, or one file (files.py reads them). Nothing is
checked here; a raw split says where it came from, for the checks' messages."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import DataConfig
from ..errors import DataError, error_text
from ..hub import hub_offline_reason
from .cache import arrow_fingerprint, file_fingerprint
from .files import SPLITS, Rows, expand_user, file_type, find_split_files, read_data_file, read_json_rows
from .task import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawSplit:
    """A split as read from its source, before any check."""

    data: Any  # rows (small files, read with the standard library) or a datasets.Dataset
    where: str  # how messages name it: a file path, or `hub:<id> <split>`
    path: Path | None  # its file (for a CSV diagnosis), if any
    fingerprint: str | None  # identifies its content (None: unknown, not cacheable)


def sample_dir(dataset: str) -> Path:
    """Folder of the bundled sample of `dataset` inside the installed package."""
    return Path(str(resources.files("finetune_cli") / "samples" / dataset))


def load_sample(spec: Task) -> dict[str, Rows]:
    folder = sample_dir(spec.name)
    return {split: read_json_rows(folder / f"{split}.jsonl.gz") for split in SPLITS}


def hub_advice(spec: Task) -> str:
    """How to use a local copy instead of the Hub, for a task of your own (presets have samples)."""
    if spec.preset:
        return ""
    args = ", ".join(repr(a) for a in (spec.hub_id, spec.subset) if a)
    return (f"; to use a local copy, save it where the Hub is reachable (datasets.load_dataset({args})"
            ".save_to_disk('FOLDER')) and set data.source to that folder, or to a folder or file of "
            "train/validation/test .csv/.jsonl/.parquet")


def load_hub(spec: Task) -> dict[str, Any]:
    """Load from the Hugging Face Hub (or its local cache) as Arrow-backed datasets, by split name.
    Raises DataError when unreachable."""
    reason = hub_offline_reason()
    shown = "/".join(a for a in (spec.hub_id, spec.subset) if a)
    if reason:
        raise DataError(f"cannot load {shown} from the Hugging Face Hub: {reason}{hub_advice(spec)}")
    try:
        import datasets  # here: ~0.6 s to import (after torch), and only the Hub source needs it
        from huggingface_hub.utils import logging as hub_logging

        datasets.disable_progress_bars()
        hub_logging.set_verbosity_error()  # no "Retrying..." lines: the failure is reported once, below
        ds = datasets.load_dataset(spec.hub_id, spec.subset)
    except Exception as e:  # any failure means "not available", reported as one line
        raise DataError(f"cannot load {shown} from the Hugging Face Hub: {error_text(e)}{hub_advice(spec)}") from e
    return dict(ds)


def raw_from_arrow(splits: dict[str, Any], spec: Task, source: str) -> dict[str, RawSplit]:
    """The task's splits of an Arrow source (Hub, save_to_disk folder), by the task's split names."""
    names = dict(zip(SPLITS, spec.split_names, strict=True))
    return {split: RawSplit(splits[name], f"{source} {name}", None, arrow_fingerprint(splits[name]))
            for split, name in names.items() if name in splits}


def raw_from_files(files: dict[str, Path], text_fields: tuple[str, ...] = ()) -> dict[str, RawSplit]:
    """Read local split files (only once every needed split exists); `text_fields` are read as text."""
    return {split: RawSplit(read_data_file(path, text_fields), str(path), path, file_fingerprint(path))
            for split, path in files.items()}


def read_source(cfg: DataConfig, spec: Task) -> tuple[dict[str, RawSplit], str]:
    """The raw splits of the task (before checks), and a description of the source."""
    if cfg.source == "sample":
        return sample_splits(spec), "sample"
    if cfg.source in ("hub", "auto"):
        try:
            return raw_from_arrow(load_hub(spec), spec, f"hub:{spec.hub_id}"), f"hub:{spec.hub_id}"
        except DataError as e:
            if cfg.source == "hub":
                raise
            log.warning("%s; falling back to the bundled sample of %s (%s).", e, spec.name, "data.source: sample")
            return sample_splits(spec), "sample"
    if spec.preset or spec.hub_id is None:  # a preset's hub_id is its own; data.source is a folder
        return read_local(expand_user(cfg.source), cfg.source, spec)
    source = f"hub:{'/'.join(a for a in (spec.hub_id, spec.subset) if a)}"
    return raw_from_arrow(load_hub(spec), spec, source), source


def sample_splits(spec: Task) -> dict[str, RawSplit]:
    folder = sample_dir(spec.name)
    paths = {split: folder / f"{split}.jsonl.gz" for split in SPLITS}
    return {split: RawSplit(read_json_rows(p), str(p), p, file_fingerprint(p)) for split, p in paths.items()}


def read_local(path: Path, source: str, spec: Task) -> tuple[dict[str, RawSplit], str]:
    """A folder of split files, a folder written by `save_to_disk`, or (a task of your own) one file."""
    if not spec.preset and path.is_file():
        if file_type(path) is None:
            raise DataError(f"{path}: not a data file (expected .csv, .tsv, .jsonl, .json or .parquet, "
                            "optionally .gz)")
        return raw_from_files({"train": path}, spec.text_fields), f"file:{source}"
    if not spec.preset and (path / "dataset_dict.json").is_file():
        import datasets  # lazy: see read_data_file

        try:
            splits = dict(datasets.load_from_disk(str(path)))
        except Exception as e:  # a damaged folder: one line naming it
            raise DataError(f"{path}: cannot read as a save_to_disk folder: {error_text(e)}") from e
        return raw_from_arrow(splits, spec, f"folder:{source}"), f"folder:{source}"
    if not spec.preset and not path.exists():
        raise DataError(f"data.source: {source!r}: no such file or folder")
    files = find_split_files(path, spec.name if spec.preset else None, spec.split_names)
    if "train" not in files:
        raise DataError(f"folder:{source}: no {spec.split_names[0]!r} split found (need a train file, e.g. "
                        f"{spec.split_names[0]}.jsonl; validation and test optional)")
    return raw_from_files(files, spec.text_fields), f"folder:{source}"
