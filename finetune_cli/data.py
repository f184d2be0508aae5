"""Data sets: the table of supported tasks, loading (Hub, bundled sample, local folder),
deterministic stratified subsets, tokenization and dynamically padded batches."""

from __future__ import annotations

import functools
import gzip
import json
import logging
import math
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .config import DataConfig
from .errors import DataError

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


def read_jsonl(path: Path) -> Rows:
    """Read a JSON Lines file of objects; a bad line is a DataError naming the file and line."""
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise DataError(f"{path}: line {n}: not JSON ({e})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}: line {n}: expected a JSON object")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    return rows


def read_jsonl_gz(path: Path) -> Rows:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sample(spec: DatasetSpec) -> dict[str, Rows]:
    folder = sample_dir(spec.name)
    return {split: read_jsonl_gz(folder / f"{split}.jsonl.gz") for split in SPLITS}


def load_hub(spec: DatasetSpec) -> dict[str, Rows]:
    """Load from the Hugging Face Hub (or its local cache). Raises DataError when unreachable."""
    try:
        import datasets

        datasets.disable_progress_bars()
        ds = datasets.load_dataset(spec.hub_id)
    except Exception as e:  # noqa: BLE001 - any failure means "not available", reported as one line
        raise DataError(f"cannot load {spec.hub_id} from the Hugging Face Hub: "
                        f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    return {split: ds[split].to_list() for split in ds if split in SPLITS}


def _find_split_file(folder: Path, split: str) -> Path | None:
    matches = [p for p in sorted(folder.iterdir())
               if p.name.split(".")[0] == split and _file_type(p) is not None]
    if len(matches) > 1:
        raise DataError(f"{folder}: several files for split {split!r}: {', '.join(p.name for p in matches)}")
    return matches[0] if matches else None


def _file_type(path: Path) -> str | None:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FILE_TYPES.get(suffixes[-1]) if suffixes else None


def read_data_file(path: Path) -> Rows:
    """Read one JSON Lines / CSV / Parquet file with the Hugging Face `datasets` loaders."""
    try:
        import datasets

        datasets.disable_progress_bars()
        ds = datasets.load_dataset(_file_type(path), data_files=str(path), split="train",
                                   cache_dir=None, keep_in_memory=True)
    except Exception as e:  # noqa: BLE001 - any parser error becomes one line naming the file
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"{path}: cannot read as {_file_type(path)}: {e.__class__.__name__}: {first}") from e
    return ds.to_list()


def find_split_files(folder: Path) -> dict[str, Path]:
    """The file of each split present in a local data folder."""
    if not folder.is_dir():
        raise DataError(f"data.source: {str(folder)!r} is neither auto, hub, sample nor an existing folder")
    paths = {split: _find_split_file(folder, split) for split in SPLITS}
    return {split: path for split, path in paths.items() if path is not None}


def check_rows(rows: Rows, spec: DatasetSpec, where: str) -> Rows:
    """Validate columns, texts and labels of a split; drop unlabeled (-1) pairs like HF SNLI."""
    needed = (*spec.text_fields, "label")
    out = []
    for i, row in enumerate(rows, start=1):
        missing = [k for k in needed if k not in row]
        if missing:
            raise DataError(f"{where}: row {i}: missing column(s) {', '.join(missing)}; "
                            f"{spec.name} needs {', '.join(needed)}")
        label = row["label"]
        if spec.name == "snli" and label in (-1, None):
            continue  # SNLI pairs without a gold label (HF marks them -1)
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < spec.num_labels:
            raise DataError(f"{where}: row {i}: label {label!r} is not in 0..{spec.num_labels - 1} "
                            f"({', '.join(spec.label_names)})")
        for k in spec.text_fields:
            if not isinstance(row[k], str) or not row[k].strip():
                raise DataError(f"{where}: row {i}: {k!r} is empty or not text")
        out.append({**{k: row[k] for k in spec.text_fields}, "label": label})
    if not out:
        raise DataError(f"{where}: no usable rows")
    return out


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
        files = find_split_files(Path(cfg.source).expanduser())
        splits, source = {}, f"folder:{cfg.source}"
    for split in ("train", "test"):
        if split not in splits and split not in files:
            raise DataError(f"{source}: no {split!r} split found (need train and test files, e.g. "
                            f"{split}.jsonl; validation optional)")
    for split, path in files.items():  # read local files only once every needed split exists
        splits[split] = read_data_file(path)
    splits = {name: check_rows(rows, spec, str(files.get(name, f"{source} {name}")))
              for name, rows in splits.items()}
    if "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(splits["train"], cfg.validation_fraction, seed)
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

    A batch sampler (not a sampler) so that accelerate can shard whole batches across
    processes; `set_epoch` reshuffles, so the order depends only on the seed and the epoch.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int):
        self.n, self.batch_size, self.shuffle, self.seed, self.epoch = n, batch_size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        order = list(range(self.n))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        return [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


def make_loader(encoded: Encoded, batch_size: int, pad_id: int, shuffle: bool = False,
                seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader of dynamically padded batches planned by `BatchPlan`."""
    return torch.utils.data.DataLoader(
        range(len(encoded)),
        batch_sampler=BatchPlan(len(encoded), batch_size, shuffle, seed),
        collate_fn=functools.partial(collate, encoded=encoded, pad_id=pad_id),
    )
