"""What a task is: its text columns, its label column and labels, where it comes from. The three
presets (IMDB, SNLI, AG News) are fixed tasks; any other task is described inline in the config
(`data.text`, `data.label`, ...) and resolved here, its label names inferred from train if not given."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import DataConfig
from ..errors import DataError, short_repr
from .files import SPLITS, is_local
from .objective import SINGLE_LABEL, Objective

MAX_LABELS = 1000  # more distinct labels than this: almost surely the wrong column


@dataclass(frozen=True)
class Task:
    name: str  # the task's name (compare groups runs by it): a preset name, `data.name`, or the source's
    hub_id: str | None  # Hugging Face Hub data set id (None: a local source)
    text_fields: tuple[str, ...]  # one field, or two for sentence pairs
    label_names: tuple[str, ...]  # label id i is label_names[i]; empty until inferred from train
    has_validation: bool  # whether the Hub copy has an official validation split
    label_field: str = "label"  # the column holding the labels
    label_values: tuple[Any, ...] = ()  # the raw value of each label id when labels are names; () = ids
    ids_only: bool = True  # labels must be ids 0..n-1 (the presets); false: names (or ids) both read
    unlabeled: tuple[Any, ...] = ()  # label values that mean "no gold label": such rows are dropped
    subset: str | None = None  # Hub configuration (subset) name, e.g. glue's `sst2`
    split_names: tuple[str | None, ...] = SPLITS  # the source's names of train / validation / test
    preset: bool = True  # one of the three presets (their bundled samples exist)
    labels_inferred: bool = False  # label names were inferred from train (not given)
    objective: Objective = SINGLE_LABEL  # labels as tensors, loss, predictions, scores

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


DATASETS = {
    "imdb": Task("imdb", "stanfordnlp/imdb", ("text",), ("neg", "pos"), False),
    "snli": Task("snli", "stanfordnlp/snli", ("premise", "hypothesis"),
                        ("entailment", "neutral", "contradiction"), True, unlabeled=(-1, None)),
    "ag_news": Task("ag_news", "fancyzhx/ag_news", ("text",),
                           ("World", "Sports", "Business", "Sci/Tech"), False),
}

def task_spec(cfg: DataConfig) -> Task:
    """The task a data config describes: a preset, or the inline task of `data.text` (its Hub id when
    `data.source` names one). Built once per run; inline label names stay empty until `with_labels`
    fills them from train."""
    if cfg.text is None:
        return DATASETS[cfg.dataset]
    given = cfg.label_names or ()
    keyword = cfg.source in ("sample", "hub", "auto")
    hub_id = None if keyword or is_local(cfg.source) else cfg.source
    return Task(
        name=cfg.name or source_name(cfg.source, cfg.subset), hub_id=hub_id, text_fields=cfg.text,
        label_names=given, has_validation=cfg.splits.validation is not None, label_field=cfg.label,
        label_values=given, ids_only=False, unlabeled=cfg.unlabeled, subset=cfg.subset,
        split_names=(cfg.splits.train, cfg.splits.validation, cfg.splits.test), preset=False)


def source_name(source: str, subset: str | None) -> str:
    """A task name from its source: a file's name without suffixes, a folder's name, or the Hub id
    (with its subset); characters a run folder name cannot hold become `_`."""
    path = Path(source.rstrip("/"))
    name = path.name.split(".")[0] if path.suffix else path.name
    if subset:
        name = f"{name}_{subset}"
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name).strip("._") or "task"


def normalize_label(value: Any) -> Any:
    """A label as the lookup sees it: a whole float (CSV/pandas reads 1 as 1.0) is the integer."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def is_unlabeled(value: Any, spec: Task) -> bool:
    """Whether a label value is one of the task's "no gold label" markers (compared as written:
    the marker `-1` also matches the integer -1)."""
    if isinstance(value, bool):
        return False
    return value in spec.unlabeled or (isinstance(value, (int, str)) and str(value) in
                                       {str(m) for m in spec.unlabeled if m is not None})


def sort_labels(values: list[Any]) -> list[Any]:
    """Label values in the order their ids are given: numbers by value, text alphabetically."""
    return sorted(values, key=lambda v: (isinstance(v, str), v))


def with_labels(spec: Task, values: list[Any], where: str) -> Task:
    """The inline task with its labels inferred from the distinct label values of train (`values`,
    markers of unlabeled rows included); a preset or a task with `label_names` is returned as it is."""
    if spec.label_names:
        return spec
    # None (a row without a label) is not a label: the row check reports it, with its row
    kept = [v for v in {normalize_label(v) for v in values} if v is not None and not is_unlabeled(v, spec)]
    bad = [v for v in kept if isinstance(v, (bool, float)) or not isinstance(v, (int, str))]
    if bad:
        raise DataError(f"{where}: label column {spec.label_field!r} holds {short_repr(bad[0])}; labels are "
                        "text or integers")
    if len(kept) > MAX_LABELS:
        raise DataError(f"{where}: {len(kept)} distinct values in label column {spec.label_field!r} (more than "
                        f"{MAX_LABELS}: is it the right column? set data.label)")
    if len(kept) < 2:
        shown = ", ".join(short_repr(v) for v in kept) or "none"
        raise DataError(f"{where}: only one class in label column {spec.label_field!r} ({shown}); "
                        "a classifier needs at least two")
    ordered = tuple(sort_labels(kept))
    return replace(spec, label_names=tuple(str(v) for v in ordered), label_values=ordered, labels_inferred=True)

