"""Stage 4, checked rows -> the run's splits: validation and test carved from train when the source
has none, sizes capped by stratified subsets (subsets.py). `load_data` is the data path from a
config to the three splits: source (sources.py) -> task (task.py) -> checked rows (checks.py) ->
splits; tokens.py and batches.py follow."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import DataConfig
from ..errors import DataError, short_repr
from .checks import Split, check_split, first_row_with, train_labels
from .sources import RawSplit, read_source
from .subsets import stratified_take
from .task import Task, task_spec, with_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedData:
    parts: dict[str, Split]  # train / validation / test
    source: str  # what was actually used: `hub:<id>`, `sample`, `folder:<path>` or `file:<path>`
    spec: Task  # the task, its label names resolved
    notes: tuple[str, ...] = ()  # what was done to the source: rows dropped, splits carved
    cache: str = "off"  # the checked rows of Arrow sources: hit (all splits read back) | miss | off

    @property
    def splits(self) -> dict[str, Any]:
        """Each split's rows: a `datasets.Dataset` of text columns + `label` (ids)."""
        return {name: part.rows for name, part in self.parts.items()}

    def sizes(self) -> dict[str, int]:
        return {name: len(part) for name, part in self.parts.items()}


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
    """What subsets are stratified by, per row in order: the label id (single-label); nothing, so a
    plain seeded sample, for indicator rows and numbers (multi-label, regression)."""
    column = part.parent.data.column("label")  # the parent has no indices mapping of its own
    import pyarrow as pa  # datasets' own dependency

    labels = column.to_numpy() if pa.types.is_integer(column.type) else np.zeros(len(column), dtype=np.int64)
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


def load_data(cfg: DataConfig, seed: int, threshold: float = 0.5) -> LoadedData:
    """The data path of a config: source -> raw splits -> task (its label space from train) ->
    checked rows -> the three splits (missing ones carved from train), capped. `threshold`:
    train.threshold, a multi-label task's decision threshold."""
    spec = task_spec(cfg)
    raw, source = read_source(cfg, spec)
    if "train" not in raw:
        raise DataError(f"{source}: no {spec.split_names[0]!r} split found (splits there: "
                        f"{', '.join(sorted(raw)) or 'none'}; set data.splits)")
    spec = with_labels(spec, train_labels(raw["train"], spec), raw["train"].where, threshold,
                       row_of=functools.partial(first_row_with, raw["train"], spec.label_field))
    parts, notes, cache = check_splits(raw, spec)
    notes += carve_missing(parts, cfg, seed, source, raw["train"].where)
    for note in [spec.decided, *notes] if spec.decided else notes:
        log.info("%s", note)
    parts = {"train": cap(parts["train"], cfg.max_train_samples, seed),
             "validation": cap(parts["validation"], cfg.max_eval_samples, seed),
             "test": cap(parts["test"], cfg.max_eval_samples, seed)}
    return LoadedData(parts=parts, source=source, spec=spec, notes=tuple(notes), cache=cache)


def check_splits(raw: dict[str, RawSplit], spec: Task) -> tuple[dict[str, Split], list[str], str]:
    """Every raw split checked: (splits, notes on dropped rows, cache state of the Arrow sources'
    checked rows: hit | miss | off)."""
    parts, notes, hits = {}, [], []
    for split, r in raw.items():
        parts[split], dropped, hit = check_split(r, spec, split)
        if not isinstance(r.data, list):
            hits.append(hit)
        if dropped:
            notes.append(f"{r.where}: dropped {dropped} row(s) without a gold label ({spec.label_field} in "
                         f"{', '.join(short_repr(v) for v in spec.unlabeled)})")
    return parts, notes, "off" if not hits else "hit" if all(hits) else "miss"


def carve_missing(parts: dict[str, Split], cfg: DataConfig, seed: int, source: str, where: str) -> list[str]:
    """Test, then validation, carved from train (in `parts`) where the source has none; the notes.
    Each fraction is of the source's train split: with both carved, validation takes its fraction of
    the rows train had before test was carved (200 rows: 20 test, 20 validation, 160 train)."""
    notes, left = [], 1.0  # the share of the source's train still in parts["train"]
    if "test" not in parts and "validation" not in parts and cfg.test_fraction + cfg.validation_fraction >= 1:
        raise DataError(f"{where}: data.test_fraction + data.validation_fraction is "
                        f"{cfg.test_fraction + cfg.validation_fraction:g}, which leaves no rows to train on")
    for split, fraction in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction)):
        if split not in parts:
            parts["train"], parts[split] = carve(parts["train"], fraction / left, seed, split, where)
            left -= fraction
            notes.append(f"{split}: no {split} split in {source}; carved {fraction:g} of train (seed {seed})")
    return notes
