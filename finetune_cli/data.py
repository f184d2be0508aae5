"""Loading a task's data: from the Hub, the bundled sample or a local folder (datafiles.py), rows
checked (text fields, labels, Unicode), a validation split carved when there is none, sizes capped
by stratified subsets (subsets.py). The task table is tasks.py; tokenization and batches batching.py."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from .config import DataConfig
from .datafiles import csv_problem, expand_user, file_type, find_split_files, read_data_file, read_json_rows
from .errors import DataError, error_text, short_repr
from .subsets import carve_validation, take_subset
from .tasks import DATASETS, SPLITS, DatasetSpec, Rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedData:
    splits: dict[str, Rows]  # train / validation / test rows: text fields + int `label`
    source: str  # what was actually used: `hub:<id>`, `sample`, or `folder:<path>`
    spec: DatasetSpec

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.splits.items()}


# ----------------------------------------------------------------------------------------------
# Sources


def sample_dir(dataset: str) -> Path:
    """Folder of the bundled sample of `dataset` inside the installed package."""
    return Path(str(resources.files("finetune_cli") / "samples" / dataset))


def load_sample(spec: DatasetSpec) -> dict[str, Rows]:
    folder = sample_dir(spec.name)
    return {split: read_json_rows(folder / f"{split}.jsonl.gz") for split in SPLITS}


def hub_offline_reason() -> str | None:
    """Why the Hub cannot be reached right now (None when it may be): offline mode set, or its
    host name does not resolve. Checked first so that an offline machine falls back at once
    instead of after the Hub client's retries (~25 s of `Retrying...` lines)."""
    if any(os.environ.get(k, "") not in ("", "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return None  # offline mode: datasets reads its local cache only, which may hold the data
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        return f"{host} does not resolve ({e.strerror or e}); offline?"
    return None


def load_hub(spec: DatasetSpec) -> dict[str, Rows]:
    """Load from the Hugging Face Hub (or its local cache). Raises DataError when unreachable."""
    reason = hub_offline_reason()
    if reason:
        raise DataError(f"cannot load {spec.hub_id} from the Hugging Face Hub: {reason}")
    try:
        import datasets  # here: ~0.6 s to import (after torch), and only the Hub source needs it
        from huggingface_hub.utils import logging as hub_logging

        datasets.disable_progress_bars()
        hub_logging.set_verbosity_error()  # no "Retrying..." lines: the failure is reported once, below
        ds = datasets.load_dataset(spec.hub_id)
    except Exception as e:  # any failure means "not available", reported as one line
        raise DataError(f"cannot load {spec.hub_id} from the Hugging Face Hub: "
                        f"{error_text(e)}") from e
    return {split: ds[split].to_list() for split in ds if split in SPLITS}


def unicode_problem(text: str) -> str | None:
    """Why a text cannot be tokenized: a lone surrogate (JSON's `\\ud800`, or a byte that is not
    UTF-8 on the command line) is no Unicode character. None when it is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"is not valid Unicode (lone surrogate {text[e.start]!r} at character {e.start + 1})"
    return None


def check_rows(rows: Rows, spec: DatasetSpec, where: str) -> Rows:
    """Validate columns, texts and labels of a split; drop unlabeled (-1) pairs like HF SNLI."""
    needed = (*spec.text_fields, "label")
    out = []
    for i, row in enumerate(rows, start=1):
        missing = [k for k in needed if k not in row]
        if missing:
            found = ", ".join(short_repr(k) for k in list(row)[:8]) or "none"
            raise DataError(f"{where}: row {i}: missing column(s) {', '.join(missing)}; "
                            f"{spec.name} needs {', '.join(needed)} (found: {found})")
        label = row["label"]
        if spec.name == "snli" and label in (-1, None):
            continue  # SNLI pairs without a gold label (HF marks them -1)
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < spec.num_labels:
            hint = ""
            if isinstance(label, str) and label in spec.label_names:
                hint = f"; labels are ids: write {spec.label_names.index(label)} for {label!r}"
            raise DataError(f"{where}: row {i}: label {short_repr(label)} is not in 0..{spec.num_labels - 1} "
                            f"({', '.join(spec.label_names)}){hint}")
        for k in spec.text_fields:
            if not isinstance(row[k], str) or not row[k].strip():
                raise DataError(f"{where}: row {i}: {k!r} is empty or not text (got {short_repr(row[k])})")
            if unicode_problem(row[k]):
                raise DataError(f"{where}: row {i}: {k!r} {unicode_problem(row[k])}")
        out.append({**{k: row[k] for k in spec.text_fields}, "label": label})
    if not out:
        raise DataError(f"{where}: no usable rows")
    return out


def check_split(rows: Rows, spec: DatasetSpec, path: Path | None, where: str) -> Rows:
    """`check_rows` of a split read from `path` (None: not from a file). A CSV row with more fields
    than its header shifts pandas' columns (the first becomes the index), so what looks like a bad
    label is reported as the malformed row it is."""
    try:
        return check_rows(rows, spec, str(path or where))
    except DataError:
        problem = csv_problem(path) if path is not None and file_type(path) == "csv" else None
        if problem is None:
            raise
        raise DataError(f"{path}: {problem}") from None


def load_data(cfg: DataConfig, seed: int) -> LoadedData:
    """Load train/validation/test for `cfg.dataset` from `cfg.source`, then cap sizes."""
    spec = DATASETS[cfg.dataset]
    files: dict[str, Path] = {}
    if cfg.source == "sample":
        splits, source = load_sample(spec), "sample"
    elif cfg.source == "hub":
        splits, source = load_hub(spec), f"hub:{spec.hub_id}"
    elif cfg.source == "auto":
        try:
            splits, source = load_hub(spec), f"hub:{spec.hub_id}"
        except DataError as e:
            log.warning("%s; falling back to the bundled sample of %s (%s).", e, spec.name,
                        "data.source: sample")
            splits, source = load_sample(spec), "sample"
    else:
        files = find_split_files(expand_user(cfg.source), spec.name)
        splits, source = {}, f"folder:{cfg.source}"
    for split in ("train", "test"):
        if split not in splits and split not in files:
            raise DataError(f"{source}: no {split!r} split found (need train and test files, e.g. "
                            f"{split}.jsonl; validation optional)")
    for split, path in files.items():  # read local files only once every needed split exists
        splits[split] = read_data_file(path)
    splits = {name: check_split(rows, spec, files.get(name), f"{source} {name}") for name, rows in splits.items()}
    if "validation" not in splits:
        n_train = len(splits["train"])
        splits["train"], splits["validation"] = carve_validation(splits["train"], cfg.validation_fraction, seed)
        if not splits["train"]:
            raise DataError(f"{files.get('train', f'{source} train')}: only {n_train} usable row(s), too few to "
                            "hold out a validation split as well; add rows or a validation file")
    splits = {
        "train": take_subset(splits["train"], cfg.max_train_samples, seed),
        "validation": take_subset(splits["validation"], cfg.max_eval_samples, seed),
        "test": take_subset(splits["test"], cfg.max_eval_samples, seed),
    }
    return LoadedData(splits=splits, source=source, spec=spec)


