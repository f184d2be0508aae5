"""Tasks of your own (`data.text`, `data.label`, ...): files, columns and labels as the data has them,
through the CLI on the tiny model; label names travel with the run; the checked/tokenized cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml
from helpers import CONFIGS, ROOT, ftcli

from finetune_cli.config import DataConfig
from finetune_cli.data.splits import load_data
from finetune_cli.errors import DataError

TINY = ["--set", "model.name=tiny-random-bert", "--set", "model.max_length=32", "--set", "train.epochs=1",
        "--set", "method.bottleneck=8"]
RESULT_FILES = {"summary.json", "metrics.jsonl", "trained.safetensors", "config.yaml"}


def write_config(path: Path, data: dict, mode: str = "layerwise") -> Path:
    path.write_text(yaml.safe_dump({"data": data, "method": {"mode": mode}, "train": {"batch_size": 16}}))
    return path


def train(config: Path, runs: Path, *extra: str) -> dict:
    result = ftcli("train", config, "--runs-dir", runs, *TINY, *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return json.loads((run / "summary.json").read_text())


def csv_text(header: str, rows: list[tuple]) -> str:
    return header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def reviews(n: int, start: int = 0) -> list[tuple]:
    return [(f"review number {i} was {'great' if i % 2 else 'awful'}", "pos" if i % 2 else "neg")
            for i in range(start, start + n)]


def test_the_shipped_example_task_trains_through_the_cli(tmp_path):
    summary = train(CONFIGS / "business_news.yaml", tmp_path / "runs",
                    "--set", f"data.source={ROOT / 'examples' / 'business_news.csv'}",
                    "--set", "data.max_train_samples=64", "--set", "data.max_eval_samples=32")
    assert summary["status"] == "completed" and summary["dataset"] == "business_news"
    assert summary["label_names"] == ["business", "other"]  # inferred from the file, sorted
    assert summary["data_sizes"] == {"train": 64, "validation": 32, "test": 32}
    assert [n.split(";")[0] for n in summary["data_notes"]] == [
        f"test: no test split in file:{ROOT / 'examples' / 'business_news.csv'}",
        f"validation: no validation split in file:{ROOT / 'examples' / 'business_news.csv'}"]


def test_the_example_file_is_what_its_script_writes():
    rows = (ROOT / "examples" / "business_news.csv").read_text().splitlines()
    assert rows[0] == "article,topic" and len(rows) == 2001
    assert sum(r.endswith(",business") for r in rows) == 200


def test_a_csv_folder_with_string_labels_and_renamed_columns(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    for split, n, start in (("train", 40, 0), ("dev", 10, 100), ("test", 10, 200)):
        (folder / f"{split}.csv").write_text(csv_text("opinion,stars_text", reviews(n, start)))
    config = write_config(tmp_path / "mine.yaml", {"source": str(folder), "text": ["opinion"], "label": "stars_text",
                                                  "splits": {"validation": "dev"}, "name": "my_reviews"})
    runs = tmp_path / "runs"
    summary = train(config, runs)
    assert summary["dataset"] == "my_reviews" and summary["label_names"] == ["neg", "pos"]
    assert summary["data_sizes"] == {"train": 40, "validation": 10, "test": 10} and summary["data_notes"] == []
    run = runs / "mine"
    result = ftcli("predict", run, "--text", "what a great film")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["label"] in ("neg", "pos")
    result = ftcli("compare", runs, "--format", "json")
    assert json.loads(result.stdout)[0]["dataset"] == "my_reviews"


def test_a_pair_task_in_jsonl_drops_rows_without_a_gold_label(tmp_path):
    names = ["entailment", "neutral", "contradiction"]
    rows = [{"sentence1": f"a man plays {i}", "sentence2": f"someone plays {i}", "gold_label": names[i % 3]}
            for i in range(45)]
    rows += [{"sentence1": "x", "sentence2": "y", "gold_label": "-"}] * 2
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    config = write_config(tmp_path / "pairs.yaml", {"source": str(path), "text": ["sentence1", "sentence2"],
                                                   "label": "gold_label", "label_names": names})
    summary = train(config, tmp_path / "runs", "--set", "method.mode=top")
    assert summary["dataset"] == "pairs" and summary["label_names"] == names  # given order, not sorted
    assert summary["data_notes"][0] == f"{path}: dropped 2 row(s) without a gold label (gold_label in '-', '-1')"
    assert sum(summary["data_sizes"].values()) == 45
    result = ftcli("predict", tmp_path / "runs" / "pairs", "--text", "a man plays", "--pair", "someone plays")
    assert result.exit_code == 0 and json.loads(result.stdout.splitlines()[0])["label"] in names


def test_a_single_file_is_carved_into_three_stratified_seeded_splits(tmp_path):
    path = tmp_path / "all.csv"
    path.write_text(csv_text("text,label", [(f"t{i}", i % 4 + 1) for i in range(200)]))  # integer labels 1..4
    cfg = DataConfig(source=str(path), text=("text",), test_fraction=0.2, validation_fraction=0.25)
    a, b, c = (load_data(cfg, seed) for seed in (0, 0, 1))
    assert a.spec.label_names == ("1", "2", "3", "4")
    assert a.sizes() == {"train": 110, "validation": 50, "test": 40}  # each fraction of the 200 rows
    for split in ("train", "validation", "test"):
        assert abs(sorted(a.splits[split]["label"]).count(0) - a.sizes()[split] / 4) <= 1  # stratified
    texts = {s: set(a.splits[s]["text"]) for s in a.splits}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]
    assert a.splits["test"]["text"] == b.splits["test"]["text"] != c.splits["test"]["text"]


def test_label_names_travel_to_the_exported_model(tmp_path):
    (tmp_path / "d.csv").write_text(csv_text("opinion,verdict", reviews(60)))
    config = write_config(tmp_path / "v.yaml", {"source": str(tmp_path / "d.csv"), "text": ["opinion"],
                                               "label": "verdict"}, mode="full")
    train(config, tmp_path / "runs")
    assert ftcli("export", tmp_path / "runs" / "v", tmp_path / "out").exit_code == 0
    exported = json.loads((tmp_path / "out" / "config.json").read_text())
    assert exported["id2label"] == {"0": "neg", "1": "pos"} and exported["label2id"] == {"neg": 0, "pos": 1}


def test_a_second_run_reads_checked_and_tokenized_splits_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTCLI_CACHE", str(tmp_path / "cache"))
    (tmp_path / "d.csv").write_text(csv_text("opinion,verdict", reviews(60)))
    config = write_config(tmp_path / "v.yaml", {"source": str(tmp_path / "d.csv"), "text": ["opinion"],
                                               "label": "verdict"})
    first = train(config, tmp_path / "a")
    second = train(config, tmp_path / "b", "--set", "seed=1")  # another seed: other rows, same cache
    assert first["data_cache"] == {"checked": "miss", "tokenized": "miss"}
    assert second["data_cache"] == {"checked": "hit", "tokenized": "hit"}
    third = train(config, tmp_path / "c", "--set", "model.max_length=16")
    assert third["data_cache"] == {"checked": "hit", "tokenized": "miss"}


BAD = [  # (name, files, data config, expected end of the one-line error)
    ("missing_column", {"d.csv": "opinion,verdict\na,neg\nb,pos\n"}, {"text": ["review"], "label": "verdict"},
     "missing column(s) review; d needs review, verdict (the columns are: 'opinion', 'verdict')"),
    ("null_text", {"d.csv": "opinion,verdict\na,neg\n,pos\nc,pos\n"}, {"text": ["opinion"], "label": "verdict"},
     "row 2: 'opinion' is empty or not text (got None)"),
    ("number_text", {"d.jsonl": '{"t": "a", "l": "x"}\n{"t": 5, "l": "y"}\n'}, {"text": ["t"], "label": "l"},
     "row 2: 't' is empty or not text (got 5)"),
    ("one_class", {"d.csv": "opinion,verdict\na,neg\nb,neg\n"}, {"text": ["opinion"], "label": "verdict"},
     "only one class in label column 'verdict' ('neg'); a classifier needs at least two"),
    ("unseen_test_label", {"train.csv": csv_text("o,v", reviews(20)), "test.csv": "o,v\ngood,pos\nmeh,meh\n"},
     {"text": ["o"], "label": "v"}, "row 2: label 'meh' does not occur in train (labels: neg, pos)"),
    ("not_a_given_name", {"d.csv": "o,v\na,neg\nb,POS\n"}, {"text": ["o"], "label": "v", "label_names": ["neg", "pos"]},
     "row 2: label 'POS' is not one of data.label_names (neg, pos) nor an id 0..1"),
    ("too_many_labels", {"d.csv": csv_text("o,v", [(f"t{i}", f"id{i}") for i in range(1001)])},
     {"text": ["o"], "label": "v"}, "1001 distinct values in label column 'v' (more than 1000: is it the right column? "
     "set data.label)"),
    ("empty_split", {"train.csv": csv_text("o,v", reviews(20)), "test.csv": "o,v\n"}, {"text": ["o"], "label": "v"},
     "no rows after the header line"),
    ("unreadable_file", {"d.csv.gz": b"not gzip at all"}, {"text": ["o"], "label": "v"},
     "cannot read (BadGzipFile: Not a gzipped file (b'no'))"),
    ("no_label", {"d.csv": "o,v\na,neg\nb,\nc,pos\n"}, {"text": ["o"], "label": "v"},
     "row 2: no label (the 'v' column is empty here)"),
    ("label_column_typo", {"d.csv": "text,label\na,neg\nb,pos\n"}, {"text": ["text"], "label": "lable"},
     "missing column(s) lable; d needs text, lable (the columns are: 'text', 'label')"),  # #23.4: not "no class"
    ("label_column_typo_jsonl", {"d.jsonl": '{"t": "a", "l": "x"}\n{"t": "b", "l": "y"}\n'},
     {"text": ["t"], "label": "lable"}, "missing column(s) lable; d needs t, lable (the columns are: 't', 'l')"),
    # #24: the hostile pass
    ("int_and_text_label_collide", {"d.jsonl": '{"t": "a", "l": 1}\n{"t": "b", "l": "1"}\n{"t": "c", "l": 0}\n'},
     {"text": ["t"], "label": "l"}, "label column 'l' holds both 1 and '1', which read as the same label name '1'; "
     "make the column one type (all text or all integers)"),
    ("duplicate_csv_column", {"d.csv": "text,label,label\na,neg,pos\nb,pos,neg\n"},
     {"text": ["text"], "label": "label"},
     "column 'label' appears twice in the header ('text,label,label'); which one is meant is ambiguous: rename or "
     "remove one"),
    ("duplicate_json_key", {"d.jsonl": '{"t": "a", "l": "x"}\n{"t": "b", "l": "x", "l": "y"}\n'},
     {"text": ["t"], "label": "l"}, "row 2: key 'l' appears twice; which value is meant is ambiguous (json keeps the "
     "last): remove one"),
    ("float_label_names_its_row", {"d.csv": "o,v\na,1\nb,2.5\nc,1\n"}, {"text": ["o"], "label": "v",
                                                                          "task": "single_label"},
     "row 2: label column 'v' holds 2.5; labels are text or integers (set data.task: regression for numbers)"),
    ("nan_label_names_its_row", {"d.jsonl": '{"t": "a", "l": 1}\n{"t": "b", "l": 0}\n{"t": "c", "l": NaN}\n'},
     {"text": ["t"], "label": "l"}, "row 3: label column 'l' holds nan; labels are text or integers (set data.task: "
     "regression for numbers)"),
]


@pytest.mark.parametrize(("files", "data", "expect"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_of_a_task_of_your_own_is_one_line_and_writes_nothing(tmp_path, files, data, expect):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    source = folder / next(iter(files)) if len(files) == 1 else folder
    with pytest.raises(DataError) as info:
        load_data(DataConfig(source=str(source), **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in data.items()}), seed=0)
    message = str(info.value)
    assert "\n" not in message and message.endswith(expect), message
    runs = tmp_path / "runs"
    result = ftcli("train", write_config(tmp_path / "bad.yaml", {"source": str(source), **data}), "--runs-dir", runs,
                   *TINY)
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"ftcli: error: {message}"], result.output
    assert not [p for p in runs.rglob("*") if p.name in RESULT_FILES]


def test_a_hub_id_offline_fails_at_once_saying_how_to_use_a_local_copy(tmp_path):
    config = write_config(tmp_path / "hub.yaml", {"source": "glue", "subset": "sst2", "text": ["sentence"]})
    result = ftcli("train", config, "--runs-dir", tmp_path / "runs", *TINY)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("ftcli: error: cannot load glue/sst2 from the Hugging Face Hub: ")
    assert "save_to_disk" in result.stderr and "set data.source to that folder" in result.stderr


def test_a_save_to_disk_folder_is_a_source(tmp_path):
    import datasets

    rows = {"sentence": [f"s{i}" for i in range(30)], "label": [i % 2 for i in range(30)]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    loaded = load_data(DataConfig(source=str(tmp_path / "saved"), text=("sentence",)), seed=0)
    assert loaded.source == f"folder:{tmp_path / 'saved'}" and loaded.sizes() == {"train": 27, "validation": 3,
                                                                                  "test": 30}
    assert loaded.spec.label_names == ("0", "1")


@pytest.mark.parametrize(("data", "message"), [
    ({"label": "y"}, "data.label: only for a task of your own; set data.text to its text column(s)"),
    ({"text": ["a", "b", "c"], "source": "x.csv"},
     "data.text: got 3 columns, expected one, or two for a sentence pair"),
    ({"text": ["a"], "source": "sample"}, "data.source: 'sample' is for the presets"),
    ({"text": ["a"], "label": "a", "source": "x.csv"}, "data.text: the text columns and data.label must be different"),
    ({"text": ["a"], "source": "x.csv", "label_names": ["p", "p"]}, "data.label_names: a name is given twice"),
])
def test_inline_task_config_errors_name_the_key(tmp_path, data, message):
    result = ftcli("train", write_config(tmp_path / "c.yaml", data), "--runs-dir", tmp_path / "runs", *TINY)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_a_csv_text_column_of_digits_is_text_and_labels_apart_only_by_whitespace_warn(tmp_path, caplog):
    """#24.11 and #24.2: ids or numbers as the text are text (pandas would make them integers and the
    check refuse them); `neg` and `neg ` stay two classes, with a warning."""
    (tmp_path / "digits.csv").write_text("code,kind\n" + "".join(f"{100 + i},{'ab'[i % 2]}\n" for i in range(20)))
    loaded = load_data(DataConfig(source=str(tmp_path / "digits.csv"), text=("code",), label="kind"), seed=0)
    assert loaded.spec.label_names == ("a", "b") and sum(len(p) for p in loaded.parts.values()) == 20
    rows = "".join(f"x{i},{['neg', 'neg ', 'pos'][i % 3]}\n" for i in range(30))
    (tmp_path / "spaces.csv").write_text("t,l\n" + rows)
    with caplog.at_level("WARNING"):
        spaced = load_data(DataConfig(source=str(tmp_path / "spaces.csv"), text=("t",), label="l"), seed=0)
    assert spaced.spec.label_names == ("neg", "neg ", "pos")
    assert "labels 'neg' and 'neg ' of column 'l' differ only in surrounding whitespace" in caplog.text


def test_each_carved_fraction_is_of_the_source_rows(tmp_path):
    """#24.11: 200 rows used to give validation 18 (10% of what test left) while the README says 10% each."""
    (tmp_path / "d.csv").write_text(csv_text("o,v", reviews(200)))
    loaded = load_data(DataConfig(source=str(tmp_path / "d.csv"), text=("o",), label="v"), seed=0)
    assert loaded.sizes() == {"train": 160, "validation": 20, "test": 20}


def test_a_spreadsheets_empty_trailing_columns_are_not_duplicates_and_fractions_must_leave_rows(tmp_path):
    (tmp_path / "d.csv").write_text("o,v,,\n" + "".join(f"{t},{label},,\n" for t, label in reviews(40)))
    loaded = load_data(DataConfig(source=str(tmp_path / "d.csv"), text=("o",), label="v"), seed=0)
    assert sum(loaded.sizes().values()) == 40
    with pytest.raises(DataError, match=r"data.test_fraction \+ data.validation_fraction is 1, which leaves no rows"):
        load_data(DataConfig(source=str(tmp_path / "d.csv"), text=("o",), label="v", test_fraction=0.5,
                             validation_fraction=0.5), seed=0)


def test_a_hub_model_offline_and_not_cached_is_one_line_before_torch_loads(tmp_path):
    """#23.6: it waited ~50 s of Hub retries. The Hub is an endpoint that never resolves (.invalid),
    online or not; offline mode is off, so the check itself is what stops it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env["HF_ENDPOINT"] = "https://hub.invalid"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "no-such-org/no-such-model"},
                                      "data": {"dataset": "imdb", "source": "sample"}}))
    probe = ("import sys\nfrom finetune_cli.cli import app\ntry:\n    app(['train', sys.argv[1]])\n"
             "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "model.name: cannot load 'no-such-org/no-such-model' from the Hugging Face Hub: hub.invalid does not " \
           "resolve" in done.stderr


def test_a_data_source_in_a_config_file_is_relative_to_that_file(tmp_path, monkeypatch):
    """#23.5: a config with `data.source: data/reviews.csv` worked from its own folder only."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "reviews.csv").write_text(csv_text("o,v", reviews(40)))
    config = project / "task.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "tiny-random-bert"}, "data": {
        "source": "data/reviews.csv", "text": ["o"], "label": "v"}, "method": {"bottleneck": 8},
        "train": {"epochs": 1}}))
    monkeypatch.chdir(tmp_path)  # elsewhere: data/reviews.csv does not exist from here
    from finetune_cli.config import load_config

    assert load_config(config).data.source == str((project / "data" / "reviews.csv").resolve())
    assert load_config(config, ["data.source=data/reviews.csv"]).data.source == "data/reviews.csv"  # --set: as typed
    result = ftcli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
