"""Loading a task's data: from the Hub, the bundled sample, a local folder or file (datafiles.py);
rows checked (text columns, labels, Unicode) and labels turned into ids, in batches over Arrow-backed
`datasets` tables (a million rows are never a Python list of rows), cached; validation and test carved
from train when the source has none; sizes capped by stratified subsets (subsets.py). The task table
is tasks.py; tokenization and batches batching.py."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..config import DataConfig
from ..data.files import csv_problem, expand_user, file_type, find_split_files, read_data_file, read_json_rows
from ..data.subsets import stratified_take
from ..data.task import SPLITS, DatasetSpec, Rows, is_unlabeled, normalize_label, task_spec, with_labels
from ..errors import DataError, error_text, short_repr

log = logging.getLogger(__name__)

CACHE_VERSION = "1"  # bump when what a cached file holds changes


@dataclass(frozen=True)
class Split:
    """One split of a run: rows `indices` (in order; None = all) of `parent`, the checked rows of a
    source split (text columns + label id, an Arrow-backed `datasets.Dataset`). Validation carved
    from train shares train's parent, so that one tokenization (batching.encode_split) serves both."""

    parent: Any  # datasets.Dataset
    key: str | None  # identifies the parent's content (source, split, task); None: not cacheable
    indices: list[int] | None = None

    @property
    def rows(self) -> Any:
        return self.parent if self.indices is None else self.parent.select(self.indices)

    def __len__(self) -> int:
        return len(self.parent) if self.indices is None else len(self.indices)


@dataclass(frozen=True)
class LoadedData:
    parts: dict[str, Split]  # train / validation / test
    source: str  # what was actually used: `hub:<id>`, `sample`, `folder:<path>` or `file:<path>`
    spec: DatasetSpec  # the task, its label names resolved
    notes: tuple[str, ...] = ()  # what was done to the source: rows dropped, splits carved
    cache: str = "off"  # the checked rows of Arrow sources: hit (all splits read back) | miss | off

    @property
    def splits(self) -> dict[str, Any]:
        """Each split's rows: a `datasets.Dataset` of text columns + `label` (ids)."""
        return {name: part.rows for name, part in self.parts.items()}

    def sizes(self) -> dict[str, int]:
        return {name: len(part) for name, part in self.parts.items()}


@dataclass(frozen=True)
class RawSplit:
    """A split as read from its source, before any check."""

    data: Any  # rows (small files, read with the standard library) or a datasets.Dataset
    where: str  # how messages name it: a file path, or `hub:<id> <split>`
    path: Path | None  # its file (for a CSV diagnosis), if any
    fingerprint: str | None  # identifies its content (None: unknown, not cacheable)


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


def hub_advice(spec: DatasetSpec) -> str:
    """How to use a local copy instead of the Hub, for a task of your own (presets have samples)."""
    if spec.preset:
        return ""
    args = ", ".join(repr(a) for a in (spec.hub_id, spec.subset) if a)
    return (f"; to use a local copy, save it where the Hub is reachable (datasets.load_dataset({args})"
            ".save_to_disk('FOLDER')) and set data.source to that folder, or to a folder or file of "
            "train/validation/test .csv/.jsonl/.parquet")


def load_hub(spec: DatasetSpec) -> dict[str, Any]:
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


def raw_from_arrow(splits: dict[str, Any], spec: DatasetSpec, source: str) -> dict[str, RawSplit]:
    """The task's splits of an Arrow source (Hub, save_to_disk folder), by the task's split names."""
    names = dict(zip(SPLITS, spec.split_names, strict=True))
    return {split: RawSplit(splits[name], f"{source} {name}", None, arrow_fingerprint(splits[name]))
            for split, name in names.items() if name in splits}


def raw_from_files(files: dict[str, Path]) -> dict[str, RawSplit]:
    """Read local split files (only once every needed split exists)."""
    return {split: RawSplit(read_data_file(path), str(path), path, file_fingerprint(path))
            for split, path in files.items()}


def is_local(source: str) -> bool:
    """Whether a source names a local path (or else a Hub id): it exists, or looks like a path."""
    path = expand_user(source)
    return path.exists() or source.startswith((".", "/", "~")) or file_type(path) is not None


def read_source(cfg: DataConfig, spec: DatasetSpec) -> tuple[dict[str, RawSplit], str, DatasetSpec]:
    """The raw splits of the task (before checks), a description of the source, and the task (with
    its Hub id when the source is one)."""
    if cfg.source == "sample":
        return sample_splits(spec), "sample", spec
    if cfg.source in ("hub", "auto"):
        try:
            return raw_from_arrow(load_hub(spec), spec, f"hub:{spec.hub_id}"), f"hub:{spec.hub_id}", spec
        except DataError as e:
            if cfg.source == "hub":
                raise
            log.warning("%s; falling back to the bundled sample of %s (%s).", e, spec.name, "data.source: sample")
            return sample_splits(spec), "sample", spec
    path = expand_user(cfg.source)
    if spec.preset or is_local(cfg.source):
        return read_local(path, cfg.source, spec)
    spec = task_spec(cfg, hub_id=cfg.source)
    source = f"hub:{'/'.join(a for a in (spec.hub_id, spec.subset) if a)}"
    return raw_from_arrow(load_hub(spec), spec, source), source, spec


def sample_splits(spec: DatasetSpec) -> dict[str, RawSplit]:
    folder = sample_dir(spec.name)
    paths = {split: folder / f"{split}.jsonl.gz" for split in SPLITS}
    return {split: RawSplit(read_json_rows(p), str(p), p, file_fingerprint(p)) for split, p in paths.items()}


def read_local(path: Path, source: str, spec: DatasetSpec) -> tuple[dict[str, RawSplit], str, DatasetSpec]:
    """A folder of split files, a folder written by `save_to_disk`, or (a task of your own) one file."""
    if not spec.preset and path.is_file():
        if file_type(path) is None:
            raise DataError(f"{path}: not a data file (expected .csv, .tsv, .jsonl, .json or .parquet, "
                            "optionally .gz)")
        return raw_from_files({"train": path}), f"file:{source}", spec
    if not spec.preset and (path / "dataset_dict.json").is_file():
        import datasets  # lazy: see read_data_file

        try:
            splits = dict(datasets.load_from_disk(str(path)))
        except Exception as e:  # a damaged folder: one line naming it
            raise DataError(f"{path}: cannot read as a save_to_disk folder: {error_text(e)}") from e
        return raw_from_arrow(splits, spec, f"folder:{source}"), f"folder:{source}", spec
    if not spec.preset and not path.exists():
        raise DataError(f"data.source: {source!r}: no such file or folder")
    files = find_split_files(path, spec.name if spec.preset else None, spec.split_names)
    if "train" not in files:
        raise DataError(f"folder:{source}: no {spec.split_names[0]!r} split found (need a train file, e.g. "
                        f"{spec.split_names[0]}.jsonl; validation and test optional)")
    return raw_from_files(files), f"folder:{source}", spec


# ----------------------------------------------------------------------------------------------
# Checks: text columns, labels to ids, unlabeled rows dropped


def unicode_problem(text: str) -> str | None:
    """Why a text cannot be tokenized: a lone surrogate (JSON's `\\ud800`, or a byte that is not
    UTF-8 on the command line) is no Unicode character. None when it is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"is not valid Unicode (lone surrogate {text[e.start]!r} at character {e.start + 1})"
    return None


def names_text(spec: DatasetSpec) -> str:
    """The label names for a message: all of them, or the first ten of many."""
    shown = ", ".join(spec.label_names[:10])
    return shown + (f", … ({spec.num_labels} in all)" if spec.num_labels > 10 else "")


@functools.lru_cache(maxsize=64)
def label_lookup(spec: DatasetSpec) -> dict[Any, int]:
    """Label value -> id of a task whose labels are names (bools excluded by the caller: True == 1)."""
    return {v: i for i, v in enumerate(spec.label_values)}


def label_id(label: Any, spec: DatasetSpec, at: str) -> int:
    """The id of one label value, or a DataError naming the row (`at`)."""
    label = normalize_label(label)
    n = spec.num_labels
    ok_id = isinstance(label, int) and not isinstance(label, bool) and 0 <= label < n
    if spec.ids_only:  # the presets: labels are ids, as in their Hub copies
        if ok_id:
            return label
        hint = ""
        if isinstance(label, str) and label in spec.label_names:
            hint = f"; labels are ids: write {spec.label_names.index(label)} for {label!r}"
        raise DataError(f"{at}: label {short_repr(label)} is not in 0..{n - 1} ({names_text(spec)}){hint}")
    if label is None:
        raise DataError(f"{at}: no label (the {spec.label_field!r} column is empty here)")
    if not isinstance(label, bool):
        try:
            return label_lookup(spec)[label]
        except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
            pass
    if spec.labels_inferred:
        raise DataError(f"{at}: label {short_repr(label)} does not occur in train (labels: {names_text(spec)})")
    if ok_id:  # with label_names given, a label may also be its id
        return label
    raise DataError(f"{at}: label {short_repr(label)} is not one of data.label_names ({names_text(spec)}) "
                    f"nor an id 0..{n - 1}")


def check_batch(batch: dict[str, list], indices: list[int], spec: DatasetSpec, where: str) -> dict[str, list]:
    """Check a batch of rows (columns of equal length; `indices`: their 0-based row numbers) and return
    its usable rows: text columns + `label` (the id). Rows whose label is a "no gold label" marker are
    dropped."""
    out: dict[str, list] = {f: [] for f in (*spec.text_fields, "label")}
    labels = batch[spec.label_field]
    for j, row in enumerate(indices):
        at = f"{where}: row {row + 1}"
        if is_unlabeled(labels[j], spec):
            continue
        label = label_id(labels[j], spec, at)
        for k in spec.text_fields:
            text = batch[k][j]
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{at}: {k!r} is empty or not text (got {short_repr(text)})")
            if unicode_problem(text):
                raise DataError(f"{at}: {k!r} {unicode_problem(text)}")
            out[k].append(text)
        out["label"].append(label)
    return out


def needed_columns(spec: DatasetSpec) -> tuple[str, ...]:
    return (*spec.text_fields, spec.label_field)


def check_rows(rows: Rows, spec: DatasetSpec, where: str) -> Any:
    """Check rows read with the standard library (each may lack a column) into a Dataset."""
    import datasets  # lazy: ~0.6 s to import

    for i, row in enumerate(rows, start=1):
        missing = [k for k in needed_columns(spec) if k not in row]
        if missing:
            found = ", ".join(short_repr(k) for k in list(row)[:8]) or "none"
            raise DataError(f"{where}: row {i}: missing column(s) {', '.join(missing)}; "
                            f"{spec.name} needs {', '.join(needed_columns(spec))} (found: {found})")
    columns = {k: [row[k] for row in rows] for k in needed_columns(spec)}
    return datasets.Dataset.from_dict(check_batch(columns, list(range(len(rows))), spec, where),
                                      features=checked_features(spec))


def checked_features(spec: DatasetSpec) -> Any:
    import datasets  # lazy: ~0.6 s to import

    return datasets.Features({**{f: datasets.Value("string") for f in spec.text_fields},
                              "label": datasets.Value("int64")})


def check_arrow(ds: Any, spec: DatasetSpec, where: str, key: str | None) -> tuple[Any, bool]:
    """Check an Arrow-backed split in batches (cached under `key`); returns (checked, cache hit)."""
    missing = [k for k in needed_columns(spec) if k not in ds.column_names]
    if missing:
        found = ", ".join(short_repr(k) for k in ds.column_names[:20]) or "none"
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; {spec.name} needs "
                        f"{', '.join(needed_columns(spec))} (the columns are: {found})")
    checked, state = cached_map(ds, check_batch, cache_path("checked", key), features=checked_features(spec),
                                fn_kwargs={"spec": spec, "where": where}, with_indices=True)
    return checked, state == "hit"


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


def task_key(spec: DatasetSpec) -> dict[str, Any]:
    """What about the task decides the checked rows (its name does not)."""
    return {"text": spec.text_fields, "label": spec.label_field, "names": spec.label_names,
            "values": [repr(v) for v in spec.label_values], "ids_only": spec.ids_only,
            "inferred": spec.labels_inferred, "unlabeled": [repr(v) for v in spec.unlabeled]}


def check_split(raw: RawSplit, spec: DatasetSpec, split: str) -> tuple[Split, int, bool]:
    """The checked rows of a raw split: (split, rows dropped as unlabeled, cache hit). A CSV row with
    more fields than its header shifts pandas' columns, so what looks like a bad label or a missing
    column is reported as the malformed row it is."""
    key = None if raw.fingerprint is None else digest([CACHE_VERSION, raw.fingerprint, split, task_key(spec)])
    try:
        if isinstance(raw.data, list):
            checked, hit = check_rows(raw.data, spec, raw.where), False
        else:
            checked, hit = check_arrow(raw.data, spec, raw.where, key)
        if len(checked) == 0:
            raise DataError(f"{raw.where}: no usable rows")
    except DataError:
        problem = csv_problem(raw.path) if raw.path is not None and file_type(raw.path) in ("csv", "tsv") else None
        if problem is None:
            raise
        raise DataError(f"{raw.path}: {problem}") from None
    return Split(checked, key), len(raw.data) - len(checked), hit


def train_labels(raw: RawSplit, spec: DatasetSpec) -> list[Any]:
    """The distinct label values of the raw train split (for label names to infer)."""
    if isinstance(raw.data, list):
        values = []
        for i, row in enumerate(raw.data, start=1):
            value = row.get(spec.label_field)
            if isinstance(value, (list, dict)):
                raise DataError(f"{raw.where}: row {i}: label {short_repr(value)} is not text or an integer")
            values.append(value)
        return list(dict.fromkeys(values))
    if spec.label_field not in raw.data.column_names:
        return []  # reported, with the columns there are, by the check
    return raw.data.unique(spec.label_field)


# ----------------------------------------------------------------------------------------------
# Splits: carved when missing, capped


def carve(part: Split, fraction: float, seed: int, what: str, where: str) -> tuple[Split, Split]:
    """(rest, carved): a seeded, stratified `fraction` of `part` held out."""
    labels = part_labels(part)
    n = max(1, round(len(labels) * fraction))
    taken, rest = stratified_take(labels, n, seed)
    if not rest:
        raise DataError(f"{where}: only {len(labels)} usable row(s), too few to hold out a {what} split as "
                        f"well; add rows or a {what} file")
    return pick(part, rest), pick(part, taken)


def part_labels(part: Split) -> np.ndarray:
    """The label ids of a split's rows, in order."""
    labels = part.parent.data.column("label").to_numpy()  # the parent has no indices mapping of its own
    return labels if part.indices is None else labels[np.asarray(part.indices, dtype=np.int64)]


def pick(part: Split, positions: list[int]) -> Split:
    """The rows at `positions` of a split (positions within the split, not its parent)."""
    chosen = positions if part.indices is None else [part.indices[i] for i in positions]
    return Split(part.parent, part.key, chosen)


def cap(part: Split, n: int | None, seed: int) -> Split:
    """A stratified, seeded subset of at most `n` rows (all rows when `n` is None)."""
    if n is None or n >= len(part):
        return part
    taken, _ = stratified_take(part_labels(part), n, seed)
    return pick(part, taken)


def load_data(cfg: DataConfig, seed: int) -> LoadedData:
    """Load train/validation/test of the task of `cfg` from `cfg.source`, then cap sizes."""
    spec = task_spec(cfg)
    raw, source, spec = read_source(cfg, spec)
    where_train = raw["train"].where if "train" in raw else f"{source} train"
    if "train" not in raw:
        raise DataError(f"{source}: no {spec.split_names[0]!r} split found (splits there: "
                        f"{', '.join(sorted(raw)) or 'none'}; set data.splits)")
    spec = with_labels(spec, train_labels(raw["train"], spec), where_train)
    notes, parts, hits = [], {}, []
    for split, r in raw.items():
        parts[split], dropped, hit = check_split(r, spec, split)
        hits.append(hit)
        if dropped:
            notes.append(f"{r.where}: dropped {dropped} row(s) without a gold label ({spec.label_field} in "
                         f"{', '.join(short_repr(v) for v in spec.unlabeled)})")
    for split, fraction in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if split not in parts:
            parts["train"], parts[split] = carve(parts["train"], fraction, seed, split, where_train)
            notes.append(f"{split}: no {split} split in {source}; carved {fraction:g} of train (seed {seed})")
    for note in notes:
        log.info("%s", note)
    parts = {
        "train": cap(parts["train"], cfg.max_train_samples, seed),
        "validation": cap(parts["validation"], cfg.max_eval_samples, seed),
        "test": cap(parts["test"], cfg.max_eval_samples, seed),
    }
    arrow = [h for h, r in zip(hits, raw.values(), strict=True) if not isinstance(r.data, list)]
    cache = "off" if not arrow else "hit" if all(arrow) else "miss"
    return LoadedData(parts=parts, source=source, spec=spec, notes=tuple(notes), cache=cache)
