"""What a task is: its text columns, its label column(s), its type (objective) and labels, where it
comes from. The three presets (IMDB, SNLI, AG News) are fixed single-label tasks; any other task is
described inline in the config (`data.text`, `data.label`, `data.task`, ...) and completed here
once from the training labels: its task type when `auto`, its label names when not given."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import DataConfig
from ..errors import DataError, short_repr
from .files import SPLITS, is_local
from .objective import SINGLE_LABEL, Objective, normalize_label, objective_for

log = logging.getLogger(__name__)

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
    objective: Objective = SINGLE_LABEL  # the task type: labels, loss, predictions, scores
    task_type: str = "single_label"  # data.task as configured (`auto` until completed from train)
    label_columns: tuple[str, ...] = ()  # multi-label as several 0/1 columns (their names: the labels)
    label_separator: str | None = None  # multi-label as text, e.g. `a;b` with `;`
    decided: str = ""  # how data.task: auto was resolved (printed), or ""

    @property
    def num_labels(self) -> int:
        """Label names (a regression task has one: its label column's)."""
        return len(self.label_names)

    @property
    def num_outputs(self) -> int:
        """The classifier's outputs."""
        return self.objective.outputs(self.num_labels)

    @property
    def label_text(self) -> str:
        """The label column(s), for messages."""
        return ", ".join(self.label_columns) if self.label_columns else repr(self.label_field)


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
    columns = cfg.label if isinstance(cfg.label, tuple) else ()
    return Task(
        name=cfg.name or source_name(cfg.source, cfg.subset), hub_id=hub_id, text_fields=cfg.text,
        label_names=columns or given, has_validation=cfg.splits.validation is not None,
        label_field="" if columns else cfg.label, label_values=columns or given, ids_only=False,
        unlabeled=cfg.unlabeled, subset=cfg.subset,
        split_names=(cfg.splits.train, cfg.splits.validation, cfg.splits.test), preset=False,
        task_type=cfg.task, label_columns=columns, label_separator=cfg.label_separator)


def source_name(source: str, subset: str | None) -> str:
    """A task name from its source: a file's name without suffixes, a folder's name, or the Hub id
    (with its subset); characters a run folder name cannot hold become `_`."""
    path = Path(source.rstrip("/"))
    name = path.name.split(".")[0] if path.suffix else path.name
    if subset:
        name = f"{name}_{subset}"
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name).strip("._") or "task"


def is_unlabeled(value: Any, spec: Task) -> bool:
    """Whether a label value is one of the task's "no gold label" markers (compared as written:
    the marker `-1` also matches the integer -1)."""
    if isinstance(value, bool) or (spec.task_type == "regression" and not isinstance(value, str)):
        return False  # a regression label -1 is a number, not the marker "-1"
    return value in spec.unlabeled or (isinstance(value, (int, str)) and str(value) in
                                       {str(m) for m in spec.unlabeled if m is not None})


def sort_labels(values: list[Any]) -> list[Any]:
    """Label values in the order their ids are given: numbers by value, text alphabetically."""
    return sorted(values, key=lambda v: (isinstance(v, str), v))


def with_labels(spec: Task, values: list[Any], where: str, threshold: float = 0.5,
                row_of: Callable[[Any], int | None] | None = None) -> Task:
    """The task completed from the distinct label values of train (`values`, markers of unlabeled
    rows included): its type when `auto` (printed), its objective, and its label names when not
    given (`row_of` finds the row of a bad value, for its message). A preset is returned as it is."""
    if spec.preset:
        return spec
    task_type, decided = infer_task_type(spec, values, where) if spec.task_type == "auto" else (spec.task_type, "")
    spec = replace(spec, task_type=task_type, objective=objective_for(task_type, threshold), decided=decided)
    if task_type == "regression":
        return replace(spec, label_names=(spec.label_field,), label_values=())
    if spec.label_names:
        return spec
    if task_type == "multi_label":
        values = [part for v in values for part in label_parts(v, spec)]
    return replace(spec, **inferred_names(spec, values, where, row_of))


def label_parts(value: Any, spec: Task) -> list[Any]:
    """The labels in one multi-label value: a list's items, or text split by data.label_separator."""
    if isinstance(value, str) and spec.label_separator is not None:
        return [part.strip() for part in value.split(spec.label_separator) if part.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def inferred_names(spec: Task, values: list[Any], where: str,
                   row_of: Callable[[Any], int | None] | None = None) -> dict[str, Any]:
    """Label names (and values) from the distinct labels of train, sorted."""
    # None (a row without a label) is not a label: the row check reports it, with its row
    kept = [v for v in {normalize_label(v) for v in values} if v is not None and not is_unlabeled(v, spec)]
    bad = [v for v in kept if isinstance(v, (bool, float)) or not isinstance(v, (int, str))]
    if bad:
        row = row_of(bad[0]) if row_of else None
        where = f"{where}: row {row}" if row else where
        raise DataError(f"{where}: label column {spec.label_text} holds {short_repr(bad[0])}; labels are "
                        "text or integers (set data.task: regression for numbers)")
    if len(kept) > MAX_LABELS:
        raise DataError(f"{where}: {len(kept)} distinct values in label column {spec.label_text} (more than "
                        f"{MAX_LABELS}: is it the right column? set data.label)")
    least = 1 if spec.task_type == "multi_label" else 2
    if len(kept) < least:
        shown = ", ".join(short_repr(v) for v in kept) or "none"
        count = "no class" if not kept else "only one class"
        raise DataError(f"{where}: {count} in label column {spec.label_text} ({shown}); "
                        f"a classifier needs at least {'one' if least == 1 else 'two'}")
    ordered = tuple(sort_labels(kept))
    check_names(ordered, spec, where)
    return {"label_names": tuple(str(v) for v in ordered), "label_values": ordered, "labels_inferred": True}


def check_names(values: tuple[Any, ...], spec: Task, where: str) -> None:
    """Label values become names by `str`: two that read alike (1 and "1") would be two classes of one
    name (predict's probabilities and an export's label2id collide), so they are refused; two that
    differ only in surrounding whitespace ("neg", "neg ") stay apart, with a warning."""
    by_name: dict[str, Any] = {}
    for value in values:  # distinct values
        other = by_name.setdefault(str(value), value)
        if str(value) in by_name and by_name[str(value)] is not value:
            raise DataError(f"{where}: label column {spec.label_text} holds both {short_repr(other)} and "
                            f"{short_repr(value)}, which read as the same label name {str(value)!r}; make the "
                            "column one type (all text or all integers)")
    by_stripped: dict[str, str] = {}
    for name in by_name:
        other = by_stripped.setdefault(name.strip(), name)
        if other != name:
            log.warning("%s: labels %r and %r of column %s differ only in surrounding whitespace; they are two "
                        "classes (strip the column if they are one)", where, other, name, spec.label_text)


def infer_task_type(spec: Task, values: list[Any], where: str) -> tuple[str, str]:
    """`data.task: auto` decided from train's labels, and printed: several label columns, list
    values or data.label_separator: multi-label; numbers that are not all integers: regression;
    else single-label. Text that looks like several labels joined is an error, never a silent
    misread (one class per distinct string). Returns the task type and the line that says why
    (printed once the rows are checked)."""
    present = [normalize_label(v) for v in values if v is not None and not is_unlabeled(v, spec)]
    if spec.label_columns or spec.label_separator is not None or any(isinstance(v, (list, tuple)) for v in present):
        decided, why = "multi_label", "lists of labels" if not spec.label_columns else "several label columns"
    elif any(isinstance(v, float) and not isinstance(v, bool) and math.isfinite(v) for v in present):
        decided, why = "regression", "numbers that are not all integers"
    else:
        joined_by_separator(present, where, spec)
        decided, why = "single_label", "one label per example"
    return decided, f"data.task: auto -> {decided} (train's labels are {why}; set data.task to choose)"


def joined_by_separator(values: list[Any], where: str, spec: Task) -> None:
    """A DataError when most text labels contain one of , ; | and their parts recur across labels."""
    texts = [v for v in values if isinstance(v, str)]
    for sep in (",", ";", "|"):
        joined = [v for v in texts if sep in v]
        parts = Counter(part.strip() for v in joined for part in set(v.split(sep)))
        if texts and len(joined) > len(texts) / 2 and any(n > 1 for n in parts.values()):
            raise DataError(f"{where}: most labels in column {spec.label_text} look like several labels joined "
                            f"by {sep!r} (e.g. {short_repr(joined[0])}); for a multi-label task set data.task: "
                            f"multi_label and data.label_separator: {sep!r}, or set data.task: single_label "
                            "to keep each text as one class")
