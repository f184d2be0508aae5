"""Data: bundled samples, deterministic stratified splits, local folders, the offline fallback."""

from __future__ import annotations

import collections
import json
import logging

import pytest

from finetune_cli.config import DataConfig
from finetune_cli.data import sources as data
from finetune_cli.data.batches import BatchPlan
from finetune_cli.data.splits import load_data
from finetune_cli.data.subsets import stratified_take
from finetune_cli.data.task import DATASETS
from finetune_cli.errors import DataError


@pytest.mark.parametrize("dataset", ["imdb", "snli", "ag_news"])
def test_bundled_samples_are_real_stratified_and_within_limits(dataset):
    spec = DATASETS[dataset]
    loaded = load_data(DataConfig(dataset=dataset, source="sample"), seed=0)
    sizes = loaded.sizes()
    assert sizes["train"] <= 2000 and sizes["validation"] <= 500 and sizes["test"] <= 1000
    for split, rows in loaded.splits.items():
        counts = collections.Counter(r["label"] for r in rows)
        assert set(counts) == set(range(spec.num_labels)), split
        assert max(counts.values()) - min(counts.values()) <= 0.1 * len(rows)
        assert all(r[f].strip() for r in rows for f in spec.text_fields)


def test_sample_checksums_match_the_readme():
    import hashlib

    readme = (data.sample_dir("imdb").parent / "README.md").read_text()
    for dataset in DATASETS:
        for path in sorted(data.sample_dir(dataset).glob("*.jsonl.gz")):
            assert hashlib.sha256(path.read_bytes()).hexdigest() in readme, path


def test_stratified_take_is_deterministic_and_keeps_proportions():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    taken, rest = stratified_take(labels, 20, seed=3)
    assert taken == stratified_take(labels, 20, seed=3)[0]
    assert taken != stratified_take(labels, 20, seed=4)[0]
    assert collections.Counter(labels[i] for i in taken) == {0: 12, 1: 6, 2: 2}
    assert sorted(taken + rest) == list(range(100))


def test_validation_is_carved_from_train_without_overlap(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"text": f"t{i}", "label": i % 2} for i in range(100)])
    _write_jsonl(tmp_path / "test.jsonl", [{"text": "fine", "label": 0}, {"text": "good", "label": 1}])
    loaded = load_data(DataConfig(dataset="imdb", source=str(tmp_path)), seed=0)
    train, val = loaded.splits["train"], loaded.splits["validation"]
    assert len(val) == 10 and len(train) == 90
    assert not set(train["text"]) & set(val["text"])
    assert collections.Counter(val["label"]) == {0: 5, 1: 5}


def test_caps_are_stratified_and_seeded():
    cfg = DataConfig(dataset="ag_news", source="sample", max_train_samples=40, max_eval_samples=20)
    a, b = load_data(cfg, seed=0), load_data(cfg, seed=0)
    assert all(a.splits[s].to_list() == b.splits[s].to_list() for s in a.splits)
    assert a.sizes() == {"train": 40, "validation": 20, "test": 20}
    assert collections.Counter(r["label"] for r in a.splits["train"]) == {0: 10, 1: 10, 2: 10, 3: 10}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_local_folder_jsonl_and_csv_and_snli_unlabeled_rows(tmp_path):
    pairs = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3} for i in range(30)]
    _write_jsonl(tmp_path / "train.jsonl", pairs + [{"premise": "x", "hypothesis": "y", "label": -1}])
    (tmp_path / "test.csv").write_text("premise,hypothesis,label\n" + "".join(f"a{i},b{i},{i % 3}\n" for i in range(9)))
    loaded = load_data(DataConfig(dataset="snli", source=str(tmp_path)), seed=0)
    assert loaded.source == f"folder:{tmp_path}"
    assert loaded.sizes() == {"train": 27, "validation": 3, "test": 9}  # the -1 row dropped, 10% carved


@pytest.mark.parametrize(("rows", "message"), [
    ([{"text": "a"}], "row 1: missing column(s) label"),
    ([{"text": "ok", "label": 0}, {"text": "  ", "label": 1}], "row 2: 'text' is empty or not text"),
    ([{"text": "ok", "label": 7}], "row 1: label 7 is not in 0..1 (neg, pos)"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, rows, message):
    _write_jsonl(tmp_path / "train.jsonl", rows)
    _write_jsonl(tmp_path / "test.jsonl", [{"text": "fine", "label": 0}])
    with pytest.raises(DataError) as info:
        load_data(DataConfig(dataset="imdb", source=str(tmp_path)), seed=0)
    assert "train" in str(info.value) and message in str(info.value)


def test_missing_split_and_missing_folder(tmp_path):
    _write_jsonl(tmp_path / "test.jsonl", [{"text": "fine", "label": 0}])
    with pytest.raises(DataError, match="no 'train' split"):
        load_data(DataConfig(dataset="imdb", source=str(tmp_path)), seed=0)
    with pytest.raises(DataError, match="neither auto, hub, sample nor an existing folder"):
        load_data(DataConfig(dataset="imdb", source=str(tmp_path / "nope")), seed=0)


def test_auto_falls_back_to_the_sample_with_a_warning(monkeypatch, caplog):
    def offline(spec):
        raise DataError(f"cannot load {spec.hub_id} from the Hugging Face Hub: ConnectionError: offline")

    monkeypatch.setattr(data, "load_hub", offline)
    with caplog.at_level(logging.WARNING, logger="finetune_cli"):
        loaded = load_data(DataConfig(dataset="imdb", source="auto", max_train_samples=10), seed=0)
    assert loaded.source == "sample"
    assert "falling back to the bundled sample of imdb" in caplog.text
    with pytest.raises(DataError, match="Hugging Face Hub"):
        load_data(DataConfig(dataset="imdb", source="hub"), seed=0)


def test_batch_plan_depends_on_seed_and_epoch_only():
    plan = BatchPlan([5] * 10, 4, shuffle=True, seed=1)
    first = plan.batches()
    plan.set_epoch(1)
    assert plan.batches() != first and sorted(sum(plan.batches(), [])) == list(range(10))
    plan.set_epoch(0)
    assert plan.batches() == first and [len(b) for b in first] == [4, 4, 2]
    assert BatchPlan([5] * 10, 4, shuffle=False, seed=1).batches()[0] == [0, 1, 2, 3]


@pytest.mark.parametrize(("dataset", "max_length"), [("imdb", 128), ("imdb", 512), ("snli", 128), ("ag_news", 128)])
def test_length_grouped_batches_pad_at_most_ten_percent(dataset, max_length):
    from transformers import AutoTokenizer

    from finetune_cli.data.batches import make_loader
    from finetune_cli.data.tokens import encode
    from finetune_cli.models.backbones import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    loaded = load_data(DataConfig(dataset=dataset, source="sample"), seed=0)
    encoded = encode(loaded.splits["train"], loaded.spec, tokenizer, max_length)
    grouped = make_loader(encoded, 16, 0, shuffle=True, seed=0, group_by_length=True).batch_sampler
    plain = make_loader(encoded, 16, 0, shuffle=True, seed=0).batch_sampler
    for epoch in range(2):
        grouped.set_epoch(epoch)
        assert grouped.pad_ratio() <= 1.1
        assert sorted(sum(grouped.batches(), [])) == list(range(len(encoded)))  # every example once
    assert grouped.pad_ratio() <= plain.pad_ratio()
    grouped.set_epoch(0)
    first = grouped.batches()
    grouped.set_epoch(1)
    assert grouped.batches() != first  # still shuffled between epochs


def test_an_unresolvable_hub_fails_at_once_without_retries(monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DataError, match="huggingface.co does not resolve"):
        data.load_hub(DATASETS["imdb"])
