"""Tiny random encoders, one per family of the architecture table: 2 layers, hidden 32, built in
code from each family's transformers config class (no download), with the real bert-base-uncased
vocabulary and tokenizer of the shipped MiniLM. Tests and smoke runs train every method on each.

The encoder's weights come from a fixed seed (the same backbone in every run; its hash is recorded);
the classification head is initialised under the run's seed, as for a pretrained backbone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..hub import TINY_PREFIX

TINY_SEED = 1234
# sizes every family shares (DistilBERT spells them differently, see _config)
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
# model type -> (transformers config class name, its own extra settings)
TINY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("BertConfig", {"max_position_embeddings": 512}),
    "roberta": ("RobertaConfig", {"max_position_embeddings": 514}),  # positions start after the pad id
    "xlm-roberta": ("XLMRobertaConfig", {"max_position_embeddings": 514}),
    "electra": ("ElectraConfig", {"embedding_size": 16}),  # embeddings smaller than hidden: projected, as ELECTRA's
    # DeBERTa-v3's settings: relative attention both ways, no absolute positions, LayerNorm on relative embeddings
    "deberta-v2": ("DebertaV2Config", {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                                       "position_biased_input": False, "norm_rel_ebd": "layer_norm",
                                       "max_relative_positions": -1, "position_buckets": 32,
                                       "share_att_key": True}),
    "distilbert": ("DistilBertConfig", {}),
    "albert": ("AlbertConfig", {"embedding_size": 16}),  # one layer shared by both depths (ALBERT's default)
    "modernbert": ("ModernBertConfig", {"global_attn_every_n_layers": 2, "local_attention": 16}),
    "mpnet": ("MPNetConfig", {"max_position_embeddings": 514}),
}
TINY_NAMES: tuple[str, ...] = tuple(TINY_PREFIX + t for t in TINY_CONFIGS)


def _config(model_type: str, tokenizer: Any, num_labels: int, overrides: dict[str, float]):
    import transformers

    class_name, extra = TINY_CONFIGS[model_type]
    sizes = ({"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64} if model_type == "distilbert" else SIZES)
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if model_type == "modernbert":  # its special tokens default to its own vocabulary's ids
        ids.update(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                   cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
    return getattr(transformers, class_name)(vocab_size=tokenizer.vocab_size, num_labels=num_labels,
                                             **sizes, **extra, **ids, **overrides)


def tiny_model(name: str, tokenizer: Any, num_labels: int, overrides: dict[str, float]) -> nn.Module:
    """The classifier of the tiny `name` (tiny-random-<model type>)."""
    from transformers import AutoModelForSequenceClassification

    config = _config(name[len(TINY_PREFIX):], tokenizer, num_labels, overrides)
    model_class = AutoModelForSequenceClassification._model_mapping[type(config)]
    model = model_class(config)  # head initialised under the run's seed
    with torch.random.fork_rng():
        torch.manual_seed(TINY_SEED)
        encoder = getattr(model_class(config), model.base_model_prefix)
    getattr(model, model.base_model_prefix).load_state_dict(encoder.state_dict())
    return model
