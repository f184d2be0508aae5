"""Stage 3, raw splits -> checked rows: text columns present and text, labels turned into ids
(rows without a gold label dropped), in batches over Arrow-backed `datasets` tables (a million rows
are never a Python list of rows), cached by fingerprint. Small files read with the standard library
arrive as rows, not a Dataset: Arrow cannot hold a column of mixed types, and the check must name
the row that has the odd one."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ..errors import DataError, short_repr
from .cache import CACHE_VERSION, cache_path, cached_map, digest
from .files import Rows, csv_problem, file_type
from .sources import RawSplit
from .task import Task, is_unlabeled, normalize_label


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


def names_text(spec: Task) -> str:
    """The label names for a message: all of them, or the first ten of many."""
    shown = ", ".join(spec.label_names[:10])
    return shown + (f", … ({spec.num_labels} in all)" if spec.num_labels > 10 else "")


@functools.lru_cache(maxsize=64)
def label_lookup(spec: Task) -> dict[Any, int]:
    """Label value -> id of a task whose labels are names (bools excluded by the caller: True == 1)."""
    return {v: i for i, v in enumerate(spec.label_values)}


def label_id(label: Any, spec: Task, at: str) -> int:
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


def check_batch(batch: dict[str, list], indices: list[int], spec: Task, where: str) -> dict[str, list]:
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


def needed_columns(spec: Task) -> tuple[str, ...]:
    return (*spec.text_fields, spec.label_field)


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
                              "label": spec.objective.label_feature()})


def check_arrow(ds: Any, spec: Task, where: str, key: str | None) -> tuple[Any, bool]:
    """Check an Arrow-backed split in batches (cached under `key`); returns (checked, cache hit)."""
    missing = [k for k in needed_columns(spec) if k not in ds.column_names]
    if missing:
        found = ", ".join(short_repr(k) for k in ds.column_names[:20]) or "none"
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; {spec.name} needs "
                        f"{', '.join(needed_columns(spec))} (the columns are: {found})")
    checked, state = cached_map(ds, check_batch, cache_path("checked", key), features=checked_features(spec),
                                fn_kwargs={"spec": spec, "where": where}, with_indices=True)
    return checked, state == "hit"


def task_key(spec: Task) -> dict[str, Any]:
    """What about the task decides the checked rows (its name does not)."""
    return {"text": spec.text_fields, "label": spec.label_field, "names": spec.label_names,
            "values": [repr(v) for v in spec.label_values], "ids_only": spec.ids_only,
            "inferred": spec.labels_inferred, "unlabeled": [repr(v) for v in spec.unlabeled]}


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


def train_labels(raw: RawSplit, spec: Task) -> list[Any]:
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
