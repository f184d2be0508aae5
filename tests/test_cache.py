"""The frozen-encoder cache (modes top and head): where it applies, that its logits are the model's
own, that training with it gives the results of the uncached path, and that the encoder runs once
per example."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_config

import finetune_cli.training.loop as train_module
from finetune_cli.config import MethodConfig, ModelConfig, config_from_dict
from finetune_cli.data.batches import make_loader
from finetune_cli.data.sources import load_sample
from finetune_cli.data.task import DATASETS
from finetune_cli.data.tokens import encode
from finetune_cli.methods.predicate import apply_method
from finetune_cli.methods.registry import METHOD_NAMES
from finetune_cli.models.backbones import load_backbone
from finetune_cli.training.experiment import prepare_experiment
from finetune_cli.training.frozen_encoder import CachedClassifier, find_cut


def tiny(mode: str, **method):
    torch.manual_seed(0)
    backbone = load_backbone(ModelConfig(name="tiny-random-bert"), 2)
    is_trained = apply_method(backbone.model, MethodConfig(mode=mode, bottleneck=8, **method))
    return backbone, is_trained


def batches(tokenizer, n: int = 24, batch_size: int = 8):
    spec = DATASETS["imdb"]
    enc = encode(load_sample(spec)["train"][:n], spec, tokenizer, 32)
    return list(make_loader(enc, batch_size, tokenizer.pad_token_id))


@pytest.mark.parametrize("mode", METHOD_NAMES)
def test_the_cut_exists_only_where_nothing_below_the_head_trains(mode):
    backbone, is_trained = tiny(mode)
    cut = find_cut(backbone.model, is_trained)
    assert (None if cut is None else cut.keep) == {"top": "cls", "head": "pooled"}.get(mode)
    backbone, is_trained = tiny(mode, train_pooler=True)
    cut = find_cut(backbone.model, is_trained)
    assert (None if cut is None else cut.keep) == {"top": "cls", "head": "cls"}.get(mode)


@pytest.mark.parametrize("mode,pooler", [("top", False), ("head", False), ("head", True), ("top", True)])
def test_cached_logits_are_the_models_own_in_eval_mode(mode, pooler):
    backbone, is_trained = tiny(mode, train_pooler=pooler, init_std=0.1)  # a top adapter far from identity
    model = backbone.model.eval()
    cached = CachedClassifier(model, find_cut(model, is_trained)).eval()
    data = batches(backbone.tokenizer)
    with torch.no_grad():
        for _ in range(2):  # the second pass is served from the cache
            for batch in data:
                inputs = {k: v for k, v in batch.items() if k != "labels"}
                expected = model(**inputs).logits
                got = cached(**inputs)
                torch.testing.assert_close(got.logits, expected, rtol=1e-5, atol=1e-6)
    assert cached.encoder_examples == 24 and len(cached.cache) == 24


def test_train_mode_keeps_the_frozen_encoder_without_dropout_and_the_head_dropout_on():
    backbone, is_trained = tiny("top")
    cached = CachedClassifier(backbone.model, find_cut(backbone.model, is_trained)).train()
    assert not backbone.model.bert.training and not backbone.model.bert.encoder.layer[0].training
    assert backbone.model.dropout.training and cached.training
    cached.eval()
    assert not backbone.model.dropout.training


def train_recording(monkeypatch, mode: str, store: bool, epochs: int = 3):
    """Train the tiny model through the one loop with the cache on (`store`) or recomputing."""
    seen = {}

    def make(model, is_trained):
        seen["cached"] = CachedClassifier(model, find_cut(model, is_trained), store=store)
        return seen["cached"]

    monkeypatch.setattr(train_module, "cached_classifier", make)
    cfg = config_from_dict(tiny_config(mode, train={"epochs": epochs}))
    exp = prepare_experiment(cfg)
    records = []
    before = {n: p.detach().clone() for n, p in exp.model.named_parameters() if exp.is_trained(n)}
    out = train_module.train(exp, on_epoch=lambda metrics: records.append(metrics[-1]))
    state = {n: p.detach().clone() for n, p in exp.model.named_parameters() if exp.is_trained(n)}
    assert any(not torch.equal(before[n], state[n]) for n in state)  # training moved the weights
    return records, state, out, seen["cached"]


@pytest.mark.parametrize("mode", ["top", "head"])
def test_training_with_the_cache_equals_the_uncached_path(monkeypatch, mode):
    cached_records, cached_state, out, cached = train_recording(monkeypatch, mode, store=True)
    plain_records, plain_state, _, plain = train_recording(monkeypatch, mode, store=False)
    assert out.cached_features == {"top": "cls", "head": "pooled"}[mode]
    for a, b in zip(cached_records, plain_records, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert a.to_json()[key] == pytest.approx(b.to_json()[key], rel=1e-6, abs=1e-7), key
    for name in plain_state:
        torch.testing.assert_close(cached_state[name], plain_state[name], rtol=1e-5, atol=1e-6)
    # 48 train + 16 validation examples, 3 epochs: the cache ran the encoder once per example,
    # the uncached path on every train step and every evaluation
    assert cached.encoder_examples == 48 + 16
    assert plain.encoder_examples == 3 * (48 + 16)


def test_switching_the_cache_off_trains_on_the_plain_model(monkeypatch):
    cfg = config_from_dict(tiny_config("top", train={"cache_frozen_encoder": False}))
    exp = prepare_experiment(cfg)
    out = train_module.train(exp, on_epoch=lambda metrics: None)
    assert out.cached_features is None


def test_a_cached_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path):
    """The cache lives in memory only: a resumed run rebuilds it and goes on as if never stopped."""
    cfg = config_from_dict(tiny_config("top", train={"epochs": 3}))
    whole: list[dict] = []
    train_module.train(prepare_experiment(cfg), lambda m: whole.append(m[-1]),
                       checkpoint=tmp_path / "a.safetensors")

    def stop_after_first_epoch(metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_module.train(prepare_experiment(cfg), stop_after_first_epoch,
                           checkpoint=tmp_path / "b.safetensors")
    resumed: list[dict] = []
    train_module.train(prepare_experiment(cfg), lambda m: resumed.append(m[-1]),
                       checkpoint=tmp_path / "b.safetensors", resume=True)
    assert [r.epoch for r in resumed] == [2, 3]
    for a, b in zip(whole[1:], resumed, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert a.to_json()[key] == pytest.approx(b.to_json()[key], rel=1e-6, abs=1e-7), key
