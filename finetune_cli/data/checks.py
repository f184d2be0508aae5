"""Stage 3, raw splits -> checked rows: text columns present and text, labels turned into ids
(rows without a gold label dropped), in batches over Arrow-backed `datasets` tables (a million rows
are never a Python list of rows), cached by fingerprint. Small files read with the standard library
arrive as rows, not a Dataset: Arrow cannot hold a column of mixed types, and the check must name
the row that has the odd one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import DataError, short_repr
from .cache import CACHE_VERSION, cache_path, cached_map, digest
from .files import Rows, csv_problem, file_type
from .objective import normalize_label
from .sources import RawSplit
from .task import Task, is_unlabeled


@dataclass(frozen=True)
class Split:
    """One split of a run: rows `indices` (in order; None = all) of `parent`, the checked rows of a
    source split (text columns + label id, an Arrow-backed `datasets.Dataset`). Validation carved
    from train shares train's parent, so that one tokenization (tokens.encode_split) serves both."""

    parent: Any  # datasets.Dataset
    key: str | None  # identifies the parent's content (source, split, task); None: not cacheable
    indices: list[int] | None = None

    @property
    def rows(self) -> Any:
        return self.parent if self.indices is None else self.parent.select(self.indices)

    def __len__(self) -> int:
        return len(self.parent) if self.indices is None else len(self.indices)


def unicode_problem(text: str) -> str | None:
    """Why a text cannot be tokenized: a lone surrogate (JSON's `\\ud800`, or a byte that is not
    UTF-8 on the command line) is no Unicode character. None when it is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"is not valid Unicode (lone surrogate {text[e.start]!r} at character {e.start + 1})"
    return None


def check_batch(batch: dict[str, list], indices: list[int], spec: Task, where: str) -> dict[str, list]:
    """Check a batch of rows (columns of equal length; `indices`: their 0-based row numbers) and return
    its usable rows: text columns + `label` (as the task's objective keeps it: an id, indicators or a
    number). Rows whose label is a "no gold label" marker are dropped."""
    out: dict[str, list] = {f: [] for f in (*spec.text_fields, "label")}
    for j, row in enumerate(indices):
        at = f"{where}: row {row + 1}"
        value = label_value(batch, j, spec, at)
        if is_unlabeled(value, spec):
            continue
        label = spec.objective.encode_label(value, spec, at)
        for k in spec.text_fields:
            text = batch[k][j]
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{at}: {k!r} is empty or not text (got {short_repr(text)})")
            if unicode_problem(text):
                raise DataError(f"{at}: {k!r} {unicode_problem(text)}")
            out[k].append(text)
        out["label"].append(label)
    return out


def label_value(batch: dict[str, list], j: int, spec: Task, at: str) -> Any:
    """Row j's raw label: its label column's value, or (several 0/1 label columns) the list of the
    columns that hold 1."""
    if not spec.label_columns:
        return batch[spec.label_field][j]
    chosen = []
    for column in spec.label_columns:
        flag = normalize_label(batch[column][j])
        if isinstance(flag, bool) or flag not in (0, 1):
            raise DataError(f"{at}: label column {column!r} holds {short_repr(flag)}; expected 0 or 1")
        if flag == 1:
            chosen.append(column)
    return chosen


def needed_columns(spec: Task) -> tuple[str, ...]:
    return (*spec.text_fields, *(spec.label_columns or (spec.label_field,)))


def check_rows(rows: Rows, spec: Task, where: str) -> Any:
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


def checked_features(spec: Task) -> Any:
    import datasets  # lazy: ~0.6 s to import

    return datasets.Features({**{f: datasets.Value("string") for f in spec.text_fields},
                              "label": spec.objective.label_feature(spec.num_labels)})


def check_arrow(ds: Any, spec: Task, where: str, key: str | None) -> tuple[Any, bool]:
    """Check an Arrow-backed split in batches (cached under `key`); returns (checked, cache hit)."""
    check_columns(ds.column_names, spec, where)
    checked, state = cached_map(ds, check_batch, cache_path("checked", key), features=checked_features(spec),
                                fn_kwargs={"spec": spec, "where": where}, with_indices=True)
    return checked, state == "hit"


def task_key(spec: Task) -> dict[str, Any]:
    """What about the task decides the checked rows (its name does not)."""
    return {"text": spec.text_fields, "label": spec.label_field, "names": spec.label_names,
            "values": [repr(v) for v in spec.label_values], "ids_only": spec.ids_only,
            "inferred": spec.labels_inferred, "unlabeled": [repr(v) for v in spec.unlabeled],
            "type": spec.objective.name, "columns": spec.label_columns, "separator": spec.label_separator}


def check_split(raw: RawSplit, spec: Task, split: str) -> tuple[Split, int, bool]:
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


def check_columns(columns: list[str], spec: Task, where: str) -> None:
    """The columns the task reads are there (else one line with the columns there are: a typo such as
    `lable` is named as such, not as a label column without classes)."""
    missing = [k for k in needed_columns(spec) if k not in columns]
    if missing:
        found = ", ".join(short_repr(k) for k in columns[:20]) or "none"
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; {spec.name} needs "
                        f"{', '.join(needed_columns(spec))} (the columns are: {found})")


def train_labels(raw: RawSplit, spec: Task) -> list[Any]:
    """The distinct label values of the raw train split (for label names to infer)."""
    if spec.label_columns or spec.preset:
        return []  # the label names are the columns' names, or the preset's own
    if isinstance(raw.data, list):
        if raw.data and not any(spec.label_field in row for row in raw.data):
            check_columns(list(raw.data[0]), spec, raw.where)  # in no row at all: a column name that is not there
        values = [row.get(spec.label_field) for row in raw.data]
    elif spec.label_field not in raw.data.column_names:
        check_columns(raw.data.column_names, spec, raw.where)
        return []  # not reached: the label column is one the task needs
    elif isinstance(raw.data.features[spec.label_field], (dict,)) or hasattr(raw.data.features[spec.label_field],
                                                                             "feature"):
        values = raw.data[spec.label_field]  # a list column (multi-label): lists are not hashable for unique()
    else:
        return raw.data.unique(spec.label_field)
    for i, value in enumerate(values, start=1):
        if isinstance(value, dict):
            raise DataError(f"{raw.where}: row {i}: label {short_repr(value)} is not a label, a number or a list")
    return list({hashable(v): v for v in values}.values())


def first_row_with(raw: RawSplit, field: str, value: Any) -> int | None:
    """The row number (from 1) of the first row whose `field` is `value` (NaN matches NaN); None
    when there is none, or the field is not a column."""
    column = ([row.get(field) for row in raw.data] if isinstance(raw.data, list)
              else raw.data[field] if field in raw.data.column_names else [])
    nan = isinstance(value, float) and math.isnan(value)
    for i, v in enumerate(column, start=1):
        if v == value or (nan and isinstance(v, float) and math.isnan(v)):
            return i
    return None


def hashable(value: Any) -> Any:
    """A label value as a dict key (lists, the labels of a multi-label row, as tuples)."""
    return tuple(hashable(v) for v in value) if isinstance(value, list) else value
