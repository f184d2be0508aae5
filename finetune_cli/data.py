"""Data sets: the table of supported tasks, loading (Hub, bundled sample, local folder),
deterministic stratified subsets, tokenization and dynamically padded batches."""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import json
import logging
import math
import random
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig
from .errors import DataError, error_text, first_line, short_repr

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FILE_TYPES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the `data.dataset` key
    hub_id: str  # Hugging Face Hub data set id
    text_fields: tuple[str, ...]  # one field, or two for sentence pairs
    label_names: tuple[str, ...]  # label id i is label_names[i] (HF ids)
    has_validation: bool  # whether the Hub copy has an official validation split

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


DATASETS = {
    "imdb": DatasetSpec("imdb", "stanfordnlp/imdb", ("text",), ("neg", "pos"), False),
    "snli": DatasetSpec("snli", "stanfordnlp/snli", ("premise", "hypothesis"),
                        ("entailment", "neutral", "contradiction"), True),
    "ag_news": DatasetSpec("ag_news", "fancyzhx/ag_news", ("text",),
                           ("World", "Sports", "Business", "Sci/Tech"), False),
}

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class LoadedData:
    splits: dict[str, Rows]  # train / validation / test rows: text fields + int `label`
    source: str  # what was actually used: `hub:<id>`, `sample`, or `folder:<path>`
    spec: DatasetSpec

    def sizes(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.splits.items()}


# ----------------------------------------------------------------------------------------------
# Deterministic, stratified subsets


def stratified_take(labels: list[int], n: int, seed: int) -> tuple[list[int], list[int]]:
    """Split indices 0..len(labels)-1 into (taken, rest): `n` taken with the label proportions of
    the whole (largest remainder), chosen by `seed`; both lists keep the original order."""
    n = min(n, len(labels))
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    quotas = {lab: n * len(idx) / len(labels) for lab, idx in by_label.items()}
    counts = {lab: int(q) for lab, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda lab: (-(quotas[lab] - counts[lab]), lab))
    for lab in by_remainder[: n - sum(counts.values())]:
        counts[lab] += 1
    rng = random.Random(seed)
    taken: set[int] = set()
    for lab in sorted(by_label):
        taken.update(rng.sample(by_label[lab], counts[lab]))
    return sorted(taken), [i for i in range(len(labels)) if i not in taken]


def take_subset(rows: Rows, n: int | None, seed: int) -> Rows:
    """A stratified, seeded subset of at most `n` rows (all rows when `n` is None)."""
    if n is None or n >= len(rows):
        return rows
    taken, _ = stratified_take([r["label"] for r in rows], n, seed)
    return [rows[i] for i in taken]


def carve_validation(train: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(train, validation): a seeded, stratified `fraction` of train held out as validation."""
    n_val = max(1, round(len(train) * fraction))
    val_idx, train_idx = stratified_take([r["label"] for r in train], n_val, seed)
    return [train[i] for i in train_idx], [train[i] for i in val_idx]


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
    import os
    import socket
    from urllib.parse import urlparse

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
        import datasets
        from huggingface_hub.utils import logging as hub_logging

        datasets.disable_progress_bars()
        hub_logging.set_verbosity_error()  # no "Retrying..." lines: the failure is reported once, below
        ds = datasets.load_dataset(spec.hub_id)
    except Exception as e:  # noqa: BLE001 - any failure means "not available", reported as one line
        raise DataError(f"cannot load {spec.hub_id} from the Hugging Face Hub: "
                        f"{error_text(e)}") from e
    return {split: ds[split].to_list() for split in ds if split in SPLITS}


def _find_split_file(folder: Path, split: str) -> Path | None:
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise DataError(f"{folder}: cannot list the data folder ({e.__class__.__name__}: {e.strerror or e})") from None
    matches = [p for p in entries if p.name.split(".")[0] == split and _file_type(p) is not None]
    if len(matches) > 1:
        raise DataError(f"{folder}: several files for split {split!r}: {', '.join(p.name for p in matches)}")
    return matches[0] if matches else None


def _file_type(path: Path) -> str | None:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FILE_TYPES.get(suffixes[-1]) if suffixes else None


def _at(row: int, line: int) -> str:
    """`row N` (the Nth record), with its line where the two differ (blank lines, CSV header)."""
    return f"row {row}" if row == line else f"row {row} (line {line})"


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # unreadable, not gzip, truncated gzip
        strerror = getattr(e, "strerror", None)
        reason = f"{e.__class__.__name__}: {strerror}" if strerror else error_text(e)
        raise DataError(f"{path}: cannot read ({reason})") from None


def read_json_rows(path: Path) -> Rows:
    """Read a JSON Lines file (one object per line) or a JSON array of objects with the standard
    library, so that every problem names its row (and line)."""
    raw = _read_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark
    if not raw.strip():
        raise DataError(f"{path}: empty file; expected one JSON object per line")
    if raw.lstrip()[:1] == b"[":  # one JSON array of objects
        try:
            items = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        except (ValueError, RecursionError) as e:  # a >4300-digit number, absurd nesting
            raise DataError(f"{path}: not valid JSON ({e.__class__.__name__}: {first_line(e, 80)})") from None
        for row, item in enumerate(items if isinstance(items, list) else [], start=1):
            if not isinstance(item, dict):
                raise DataError(f"{path}: row {row}: expected a JSON object, got {short_repr(item)}")
        return items
    rows: Rows = []
    for line, data in enumerate(raw.split(b"\n"), start=1):
        if not data.strip():
            continue
        at = _at(len(rows) + 1, line)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: {at}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None
        try:
            item = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: {at}: not valid JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # a >4300-digit number, absurd nesting
            raise DataError(f"{path}: {at}: not valid JSON ({e.__class__.__name__}: {first_line(e, 80)})") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}: {at}: expected a JSON object, got {short_repr(item)}")
        rows.append(item)
    return rows


def _csv_problem(path: Path) -> str | None:
    """Why a CSV file cannot be read, by row, found with the standard library (None: no idea)."""
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at byte {e.start})"
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, None)
        if not header:
            return "empty file; expected a header line such as text,label"
        row = 0
        for fields in reader:
            if not fields:
                continue  # blank lines are skipped by the reader too
            row += 1
            if len(fields) != len(header):
                return (f"{_at(row, reader.line_num)}: {len(fields)} fields, but the header has "
                        f"{len(header)} ({short_repr(','.join(header))})")
    except csv.Error as e:
        return f"line {reader.line_num}: not valid CSV ({e})"
    return None if row else "no rows after the header line"


@contextlib.contextmanager
def _quiet_datasets():
    """Silence the `datasets` logger: its parser errors are re-raised as one DataError line."""
    from datasets.utils import logging as ds_logging

    before = ds_logging.get_verbosity()
    ds_logging.set_verbosity(logging.CRITICAL + 1)
    try:
        yield
    finally:
        ds_logging.set_verbosity(before)


def read_data_file(path: Path) -> Rows:
    """Read one data file: JSON Lines / JSON with the standard library (row-exact messages), CSV and
    Parquet with the Hugging Face `datasets` loaders."""
    kind = _file_type(path)
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if kind == "json":
        return read_json_rows(path)
    try:
        import datasets

        datasets.disable_progress_bars()
        with _quiet_datasets():
            ds = datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=None,
                                       keep_in_memory=True)
    except Exception as e:  # noqa: BLE001 - any parser error becomes one line naming the file
        problem = _csv_problem(path) if kind == "csv" else None
        if problem is not None:
            raise DataError(f"{path}: {problem}") from e
        cause = e.__cause__ or e.__context__ if e.__class__.__name__ == "DatasetGenerationError" else None
        shown = cause or e
        raise DataError(f"{path}: cannot read as {kind}: {error_text(shown)}") from e
    return ds.to_list()


def _expand_user(source: str) -> Path:
    """`~/data` to the home folder; an unknown `~user` stays as written (then is not a folder)."""
    try:
        return Path(source).expanduser()
    except RuntimeError:  # no such user, or no home folder
        return Path(source)


def find_split_files(folder: Path, dataset: str | None = None) -> dict[str, Path]:
    """The file of each split present in a local data folder, or in its subfolder named `dataset`
    when the folder itself holds no split file (one root for several data sets: a sweep over data
    sets takes one `--set data.source=ROOT`)."""
    if not folder.is_dir():
        raise DataError(f"data.source: {str(folder)!r} is neither auto, hub, sample nor an existing folder")
    paths = {split: _find_split_file(folder, split) for split in SPLITS}
    found = {split: path for split, path in paths.items() if path is not None}
    if not found and dataset is not None and (folder / dataset).is_dir():
        return find_split_files(folder / dataset)
    return found


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
        problem = _csv_problem(path) if path is not None and _file_type(path) == "csv" else None
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
        files = find_split_files(_expand_user(cfg.source), spec.name)
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


# ----------------------------------------------------------------------------------------------
# Tokenization and batches


@dataclass(frozen=True)
class Encoded:
    """A tokenized split: unpadded token ids per example, and labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def encode(rows: Rows, spec: DatasetSpec, tokenizer: Any, max_length: int) -> Encoded:
    """Tokenize without padding (batches are padded to their own longest example)."""
    columns = [[r[f] for r in rows] for f in spec.text_fields]
    enc = tokenizer(*columns, truncation=True, max_length=max_length, padding=False,
                    return_token_type_ids=True)
    return Encoded(enc["input_ids"], enc["token_type_ids"], [r["label"] for r in rows])


def collate(indices: list[int], encoded: Encoded, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad one batch to its longest example: tensors of shape [batch, longest]."""
    longest = max(len(encoded.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    types_ = torch.zeros((len(indices), longest), dtype=torch.long)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)
    for row, i in enumerate(indices):
        n = len(encoded.input_ids[i])
        ids[row, :n] = torch.tensor(encoded.input_ids[i])
        types_[row, :n] = torch.tensor(encoded.token_type_ids[i])
        mask[row, :n] = 1
    labels = torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long)
    return {"input_ids": ids, "token_type_ids": types_, "attention_mask": mask, "labels": labels}


class BatchPlan:
    """Batches of example indices, fixed per epoch: shuffled with `seed + epoch` when training.

    A batch sampler (not a sampler) so that accelerate can shard whole batches across processes;
    `set_epoch` reshuffles, so the order depends only on the seed and the epoch. With
    `group_by_length`, each chunk of `GROUP_BATCHES` shuffled batches is sorted by length before it
    is cut into batches, and the batch order is shuffled again (as transformers'
    LengthGroupedSampler): batches hold examples of similar length, so little padding is computed.
    """

    GROUP_BATCHES = 16  # batches per sorted chunk: larger = less padding, less randomness

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool, seed: int, group_by_length: bool = False):
        self.lengths, self.batch_size, self.shuffle, self.seed = lengths, batch_size, shuffle, seed
        self.group_by_length, self.epoch = group_by_length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n, size = len(self.lengths), self.batch_size
        rng = random.Random(self.seed + self.epoch)
        order = list(range(n))
        if self.shuffle:
            rng.shuffle(order)
        if self.group_by_length:
            chunk = size * self.GROUP_BATCHES if self.shuffle else n  # evaluation: sort everything
            order = [i for s in range(0, n, chunk)
                     for i in sorted(order[s : s + chunk], key=lambda i: -self.lengths[i])]
        batches = [order[i : i + size] for i in range(0, n, size)]
        if self.group_by_length and self.shuffle:
            rng.shuffle(batches)
        return batches

    def pad_ratio(self) -> float:
        """Tokens computed (padded batches) / real tokens, for this epoch's batches."""
        padded = sum(len(b) * max(self.lengths[i] for i in b) for b in self.batches())
        return padded / sum(self.lengths)

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def make_loader(encoded: Encoded, batch_size: int, pad_id: int, shuffle: bool = False, seed: int = 0,
                group_by_length: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of dynamically padded batches planned by `BatchPlan`."""
    lengths = [len(ids) for ids in encoded.input_ids]
    return torch.utils.data.DataLoader(
        range(len(encoded)),
        batch_sampler=BatchPlan(lengths, batch_size, shuffle, seed, group_by_length),
        collate_fn=functools.partial(collate, encoded=encoded, pad_id=pad_id),
    )
