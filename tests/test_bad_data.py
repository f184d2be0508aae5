"""Bad local data folders: each fails with one DataError line naming the file (and row), exit code 2
through the CLI, before any model is loaded or anything is trained.

tests/test_data.py covers the basic cases (a missing label column, a blank text, label 7, no test
file, no folder) directly; these go through the CLI and cover unreadable files and the rest.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finetune_cli.cli import app
from finetune_cli.config import DataConfig
from finetune_cli.data.splits import load_data
from finetune_cli.errors import DataError

runner = CliRunner()
RESULT_FILES = ("metrics.jsonl", "summary.json", "trained.safetensors")


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


IMDB_OK = jsonl(*({"text": f"review {i}", "label": i % 2} for i in range(10)))
SNLI_OK = jsonl(*({"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3} for i in range(9)))
AG_OK = jsonl(*({"text": f"story {i}", "label": i % 4} for i in range(8)))
OK = {"imdb": IMDB_OK, "snli": SNLI_OK, "ag_news": AG_OK}

# (id, dataset, {file name: content, or None to leave the split out}, the file the message names
#  (None: the folder), substrings the message must contain)
CASES = [
    # unreadable files
    ("jsonl_invalid_json_line", "imdb", {"train.jsonl": jsonl({"text": "a", "label": 0}, '{"text": "b", "label": 1')},
     "train.jsonl", ["row 2: not valid JSON (Expecting ',' delimiter at column 25)"]),
    ("jsonl_blank_line_then_bad_json", "imdb", {"train.jsonl": jsonl({"text": "a", "label": 0}, "", "{text: b}")},
     "train.jsonl", ["row 2 (line 3): not valid JSON (Expecting property name enclosed in double quotes"]),
    ("jsonl_line_is_a_list", "imdb", {"train.jsonl": IMDB_OK + "[1, 2]\n"},
     "train.jsonl", ["row 11: expected a JSON object, got [1, 2]"]),
    ("jsonl_empty_file", "imdb", {"train.jsonl": ""}, "train.jsonl", ["empty file; expected one JSON object per line"]),
    ("jsonl_not_utf8", "imdb", {"train.jsonl": b'{"text": "ok", "label": 0}\n{"text": "caf\xe9", "label": 1}\n'},
     "train.jsonl", ["row 2: not UTF-8 text (byte 0xe9)"]),
    ("jsonl_gz_not_gzip", "imdb", {"train.jsonl.gz": b"this is not gzip data"},
     "train.jsonl.gz", ["cannot read (BadGzipFile: Not a gzipped file"]),
    ("jsonl_gz_truncated", "imdb", {"train.jsonl.gz": gzip.compress(IMDB_OK.encode())[:-12]},
     "train.jsonl.gz", ["cannot read (EOFError"]),
    ("json_array_truncated", "imdb", {"train.json": '[{"text": "a", "label": 0},\n {"text": "b"'},
     "train.json", ["not valid JSON at line 2, column"]),
    ("json_array_with_a_number", "imdb", {"train.json": '[{"text": "a", "label": 0}, 5]'},
     "train.json", ["row 2: expected a JSON object, got 5"]),
    ("parquet_binary_garbage", "imdb", {"train.parquet": bytes(range(256)) * 4},
     "train.parquet", ["cannot read as parquet: ArrowInvalid"]),
    ("csv_wrong_header", "imdb", {"train.csv": "sentence,sentiment\ngreat,1\nawful,0\n"},
     "train.csv", ["missing column(s) text, label; imdb needs text, label (the columns are: 'sentence', 'sentiment')"]),
    ("csv_ragged_row", "imdb", {"train.csv": "text,label\ngood,1\nbad,0,extra\n"},
     "train.csv", ["row 2 (line 3): 3 fields, but the header has 2 ('text,label')"]),
    ("csv_header_only", "imdb", {"test.csv": "text,label\n"}, "test.csv", ["no rows after the header line"]),
    ("csv_empty", "imdb", {"test.csv": ""}, "test.csv", ["empty file; expected a header line"]),
    ("csv_label_names", "imdb", {"train.csv": "text,label\ngood,pos\nbad,neg\n"},
     "train.csv", ["row 1: label 'pos' is not in 0..1 (neg, pos); labels are ids: write 1 for 'pos'"]),
    ("csv_extra_column_in_every_row", "imdb", {"train.csv": "text,label\ngood,1,x\nbad,0,y\n"},
     "train.csv", ["row 1 (line 2): 3 fields, but the header has 2 ('text,label')"]),
    ("split_file_is_a_folder", "imdb", {"validation.jsonl/": None}, "validation.jsonl", ["not a file"]),
    # columns and texts
    ("missing_label_in_row_3", "imdb", {"validation.jsonl": jsonl({"text": "a", "label": 0}, {"text": "b", "label": 1},
                                                                  {"text": "c", "sentiment": 1})},
     "validation.jsonl", ["row 3: missing column(s) label; imdb needs text, label (found: 'text', 'sentiment')"]),
    ("whitespace_text", "imdb", {"test.jsonl": jsonl({"text": "fine", "label": 0}, {"text": " \t\n", "label": 1})},
     "test.jsonl", ["row 2: 'text' is empty or not text (got ' \\t\\n')"]),
    ("lone_surrogate", "imdb",
     {"train.jsonl": jsonl({"text": "ok", "label": 0}, '{"text": "abc \\ud800", "label": 1}')},
     "train.jsonl", ["row 2: 'text' is not valid Unicode (lone surrogate '\\ud800' at character 5)"]),
    ("number_as_text", "ag_news", {"train.jsonl": jsonl({"text": 42, "label": 0})},
     "train.jsonl", ["row 1: 'text' is empty or not text (got 42)"]),
    # labels
    ("label_outside_ag_news", "ag_news", {"train.jsonl": AG_OK + jsonl({"text": "x", "label": 4})},
     "train.jsonl", ["row 9: label 4 is not in 0..3 (World, Sports, Business, Sci/Tech)"]),
    ("label_negative_imdb", "imdb", {"train.jsonl": jsonl({"text": "a", "label": -1})},
     "train.jsonl", ["row 1: label -1 is not in 0..1 (neg, pos)"]),
    ("label_string_pos", "imdb", {"train.jsonl": jsonl({"text": "a", "label": 0}, {"text": "b", "label": "pos"})},
     "train.jsonl", ["row 2: label 'pos' is not in 0..1 (neg, pos); labels are ids: write 1 for 'pos'"]),
    ("label_boolean", "imdb", {"test.jsonl": jsonl({"text": "a", "label": True})},
     "test.jsonl", ["row 1: label True is not in 0..1"]),
    ("label_fraction", "imdb", {"test.jsonl": jsonl({"text": "a", "label": 0.5})},
     "test.jsonl", ["row 1: label 0.5 is not in 0..1"]),
    ("label_null_imdb", "imdb", {"test.jsonl": jsonl({"text": "a", "label": None})},
     "test.jsonl", ["row 1: label None is not in 0..1"]),
    ("label_nan", "imdb", {"test.jsonl": '{"text": "a", "label": NaN}\n'}, "test.jsonl", ["row 1: label nan is not"]),
    ("label_snli_3", "snli", {"train.jsonl": jsonl({"premise": "p", "hypothesis": "h", "label": 3})},
     "train.jsonl", ["row 1: label 3 is not in 0..2 (entailment, neutral, contradiction)"]),
    # SNLI pairs
    ("snli_missing_hypothesis", "snli", {"train.jsonl": jsonl({"premise": "p", "hypothesis": "h", "label": 0},
                                                             {"premise": "p2", "label": 1})},
     "train.jsonl", ["row 2: missing column(s) hypothesis; snli needs premise, hypothesis, label"]),
    ("snli_null_hypothesis", "snli", {"test.jsonl": jsonl({"premise": "p", "hypothesis": None, "label": 2})},
     "test.jsonl", ["row 1: 'hypothesis' is empty or not text (got None)"]),
    ("snli_empty_premise_csv", "snli", {"test.csv": "premise,hypothesis,label\n,a dog runs,0\n"},
     "test.csv", ["row 1: 'premise' is empty or not text"]),
    ("snli_only_unlabeled_pairs", "snli", {"test.jsonl": jsonl({"premise": "p", "hypothesis": "h", "label": -1})},
     "test.jsonl", ["no usable rows"]),
    # splits
    ("no_train_split", "snli", {"train.jsonl": None}, None, ["no 'train' split found"]),
    ("two_train_files", "imdb", {"train.csv": "text,label\na,0\n", "train.jsonl": IMDB_OK}, None,
     ["several files for split 'train': train.csv, train.jsonl"]),
    ("train_too_small_to_carve_validation", "imdb", {"train.jsonl": jsonl({"text": "only", "label": 0})},
     "train.jsonl", ["only 1 usable row(s), too few to hold out a validation split"]),
]


def make_folder(root: Path, dataset: str, files: dict) -> Path:
    """A data folder: `files`, plus good train/test .jsonl files for the splits `files` does not give
    (None: leave that file out; a name ending in / : a folder of that name)."""
    folder = root / "data"
    folder.mkdir()
    given = {name.split(".")[0] for name in files}
    for default in ("train.jsonl", "test.jsonl"):
        if default in files or default.split(".")[0] not in given:
            (folder / default).write_text(OK[dataset])
    for name, content in files.items():
        if name.endswith("/"):
            (folder / name.rstrip("/")).mkdir()
        elif content is None:
            (folder / name).unlink()
        else:
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def write_config(root: Path, dataset: str, source: Path) -> Path:
    path = root / "bad-data.yaml"
    path.write_text(f"model: {{name: tiny-random-bert, max_length: 32}}\n"
                    f"data: {{dataset: {dataset}, source: '{source}'}}\n"
                    "method: {mode: top, bottleneck: 8}\ntrain: {epochs: 1}\n")
    return path


@pytest.mark.parametrize(("dataset", "files", "named", "expect"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_fails_with_one_line_naming_the_file(dataset, files, named, expect, tmp_path):
    folder = make_folder(tmp_path, dataset, files)
    where = str(folder / named) if named else str(folder)

    with pytest.raises(DataError) as info:  # directly ...
        load_data(DataConfig(dataset=dataset, source=str(folder)), seed=0)
    message = str(info.value)
    assert "\n" not in message and where in message and all(e in message for e in expect), message
    if named:
        assert message.startswith(f"{where}: "), message

    runs = tmp_path / "runs"  # ... and through the CLI, before anything trains
    result = runner.invoke(app, ["train", str(write_config(tmp_path, dataset, folder)), "--runs-dir", str(runs)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.splitlines() == [f"ftcli: error: {message}"]
    assert result.stdout == "" and "Traceback" not in result.output
    assert not [p for p in runs.rglob("*") if p.name in RESULT_FILES]


def test_a_data_source_that_is_a_file_or_an_unknown_home_is_not_a_folder(tmp_path):
    (tmp_path / "train.jsonl").write_text(IMDB_OK)
    for source in (str(tmp_path / "train.jsonl"), "~no-such-user-ftcli/data"):
        with pytest.raises(DataError, match="is neither auto, hub, sample nor an existing folder"):
            load_data(DataConfig(dataset="imdb", source=source), seed=0)


def test_good_variants_still_load(tmp_path):
    """What the stricter readers must keep accepting: a JSON array, blank lines, a BOM, gzip,
    float labels that are whole numbers, extra columns, and SNLI's unlabeled (-1) pairs."""
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [{"text": f"t{i}", "label": float(i % 2), "extra": i} for i in range(20)]
    (folder / "train.json").write_text(json.dumps(rows))
    (folder / "validation.jsonl").write_bytes(b"\xef\xbb\xbf" + jsonl(rows[0], "", rows[1], " ").encode())
    (folder / "test.jsonl.gz").write_bytes(gzip.compress(IMDB_OK.encode()))
    loaded = load_data(DataConfig(dataset="imdb", source=str(folder)), seed=0)
    assert loaded.sizes() == {"train": 20, "validation": 2, "test": 10}
    assert loaded.splits["train"][0] == {"text": "t0", "label": 0}


def test_a_missing_test_split_is_carved_from_train_and_said(tmp_path):
    rows = jsonl(*({"text": f"t{i}", "label": i % 2} for i in range(40)))
    folder = make_folder(tmp_path, "imdb", {"test.jsonl": None, "train.jsonl": rows})
    loaded = load_data(DataConfig(dataset="imdb", source=str(folder)), seed=0)
    assert loaded.sizes() == {"train": 32, "validation": 4, "test": 4}
    assert [n.split(";")[0] for n in loaded.notes] == [f"test: no test split in folder:{folder}",
                                                       f"validation: no validation split in folder:{folder}"]
    texts = [set(loaded.splits[s]["text"]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
