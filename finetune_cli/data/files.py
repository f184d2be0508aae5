"""Local data files: find each split's file in a folder and read it (JSON Lines / JSON with the
standard library, CSV and Parquet with `datasets`), every problem named by file and row; a CSV file
that `datasets` cannot parse is diagnosed row by row with the standard library."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import logging
import zlib
from pathlib import Path
from typing import Any

from ..errors import DataError, error_text, first_line, short_repr

SPLITS = ("train", "validation", "test")
Rows = list[dict[str, Any]]  # rows read with the standard library (small files): column -> value

FILE_TYPES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
# JSON files up to this size (on disk) are read with the standard library, so that every problem
# names its row and line; larger ones with Arrow's reader (datasets), so that a million rows are
# never held as Python objects.
PYTHON_JSON_BYTES = 32 * 2**20


def find_split_file(folder: Path, split: str) -> Path | None:
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise DataError(f"{folder}: cannot list the data folder ({e.__class__.__name__}: {e.strerror or e})") from None
    matches = [p for p in entries if p.name.split(".")[0] == split and file_type(p) is not None]
    if len(matches) > 1:
        raise DataError(f"{folder}: several files for split {split!r}: {', '.join(p.name for p in matches)}")
    return matches[0] if matches else None


def file_type(path: Path) -> str | None:
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


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a key twice in one object is refused (json.loads keeps the last)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def _loads(text: str | bytes) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


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
            items = _loads(raw.decode("utf-8"))
        except DuplicateKey as e:
            raise DataError(f"{path}: key {str(e)!r} appears twice in one object; which value is meant is "
                            "ambiguous (json keeps the last): remove one") from None
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
            item = _loads(text)
        except DuplicateKey as e:
            raise DataError(f"{path}: {at}: key {str(e)!r} appears twice; which value is meant is ambiguous "
                            "(json keeps the last): remove one") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: {at}: not valid JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # a >4300-digit number, absurd nesting
            raise DataError(f"{path}: {at}: not valid JSON ({e.__class__.__name__}: {first_line(e, 80)})") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}: {at}: expected a JSON object, got {short_repr(item)}")
        rows.append(item)
    return rows


def csv_problem(path: Path) -> str | None:
    """Why a CSV file cannot be read, by row, found with the standard library (None: no idea)."""
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at byte {e.start})"
    reader = csv.reader(text.splitlines(keepends=True), delimiter="\t" if file_type(path) == "tsv" else ",")
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
    from datasets.utils import logging as ds_logging  # lazy: see read_data_file

    before = ds_logging.get_verbosity()
    ds_logging.set_verbosity(logging.CRITICAL + 1)
    try:
        yield
    finally:
        ds_logging.set_verbosity(before)


def csv_header(path: Path) -> list[str]:
    """The header fields of a CSV/TSV file (its first line only)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f, delimiter="\t" if file_type(path) == "tsv" else ","), [])
    except (OSError, UnicodeDecodeError, EOFError, csv.Error):
        return []  # unreadable: the loader's own error names it below


def check_header(path: Path) -> None:
    """A column name twice: pandas would rename the second `label.1` and the first would be used silently."""
    header = csv_header(path)
    twice = sorted({name for name in header if name and header.count(name) > 1})  # empty: a spreadsheet's padding
    if twice:
        raise DataError(f"{path}: column {twice[0]!r} appears twice in the header ({short_repr(','.join(header))}); "
                        "which one is meant is ambiguous: rename or remove one")


def read_data_file(path: Path, text_fields: tuple[str, ...] = ()) -> Rows | Any:
    """Read one data file: small JSON Lines / JSON with the standard library (row-exact messages), as
    rows; CSV, TSV, Parquet and large JSON with the Hugging Face `datasets` loaders, as an Arrow-backed
    `datasets.Dataset` kept in datasets' own cache (memory-mapped: a second read is a file open).
    CSV columns in `text_fields` are read as text (a column of digits stays text, not numbers)."""
    kind = file_type(path)
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if kind == "json" and path.stat().st_size <= PYTHON_JSON_BYTES:
        return read_json_rows(path)
    if kind in ("csv", "tsv"):
        check_header(path)
    try:
        import datasets  # here: ~0.6 s to import (after torch), and only these files need it

        datasets.disable_progress_bars()
        options: dict[str, Any] = {"delimiter": "\t"} if kind == "tsv" else {}
        if kind in ("csv", "tsv") and text_fields:
            options["converters"] = {name: str for name in text_fields}  # pandas.read_csv: the field as written
        with _quiet_datasets():
            return datasets.load_dataset("csv" if kind == "tsv" else kind, data_files=str(path.resolve()),
                                         split="train", **options)
    except Exception as e:  # any parser error becomes one line naming the file
        problem = csv_problem(path) if kind in ("csv", "tsv") else None
        if problem is not None:
            raise DataError(f"{path}: {problem}") from e
        cause = e.__cause__ or e.__context__ if e.__class__.__name__ == "DatasetGenerationError" else None
        shown = cause or e
        raise DataError(f"{path}: cannot read as {kind}: {error_text(shown)}") from e


def expand_user(source: str) -> Path:
    """`~/data` to the home folder; an unknown `~user` stays as written (then is not a folder)."""
    try:
        return Path(source).expanduser()
    except RuntimeError:  # no such user, or no home folder
        return Path(source)


def find_split_files(folder: Path, dataset: str | None = None,
                     names: tuple[str | None, ...] = SPLITS) -> dict[str, Path]:
    """The file of each split present in a local data folder (`names`: the file name stems of
    train / validation / test; None: that split has no file), or in its subfolder named `dataset`
    when the folder itself holds no split file (one root for several data sets: a sweep over data
    sets takes one `--set data.source=ROOT`)."""
    if not folder.is_dir():
        raise DataError(f"data.source: {str(folder)!r} is neither auto, hub, sample nor an existing folder")
    paths = {split: find_split_file(folder, name) for split, name in zip(SPLITS, names, strict=True) if name}
    found = {split: path for split, path in paths.items() if path is not None}
    if not found and dataset is not None and (folder / dataset).is_dir():
        return find_split_files(folder / dataset, None, names)
    return found


def is_local(source: str) -> bool:
    """Whether a source names a local path (or else a Hub id): it exists, or looks like a path."""
    path = expand_user(source)
    return path.exists() or source.startswith((".", "/", "~")) or file_type(path) is not None
