"""The architecture table: per encoder family (keyed by `config.model_type`), where each method
inserts or what it targets. One entry per family, the only place that knows module names
(AdapterHub's per-model interfaces, PEFT's per-model-type target table, in one record).

Paths are dotted module paths: `layers` from the base model (`model.<base_model_prefix>`) to a
ModuleList of layers, with `*` for every entry of an outer ModuleList; the per-layer paths from one
layer; `last_hidden` from the base model, where an integer indexes a ModuleList (-1: the last).

Adapter placement, one rule per LayerNorm style:
* post-LN (BERT and most encoders; `LN(x + dropout(proj(h)))`): Houlsby et al. 2019, Fig. 2 — an
  adapter on each sublayer's output after its projection and dropout, before the residual add and
  the LayerNorm (`attention_out`, `ffn_out`); Pfeiffer et al. 2021 (AdapterHub's seq_bn) — one
  adapter around the feed-forward LayerNorm, `LN(s + adapter(LN(s)))` (`ffn_norm`); the top adapter
  after the last layer's LayerNorm.
* pre-LN (ModernBERT; `x + proj(LN(x))`, a final LayerNorm after the last layer): no LayerNorm
  follows a sublayer, so ftcli keeps Houlsby's position relative to the residual — each adapter on
  a sublayer's output before the residual add (`x + A(proj(LN(x)))`) — and Pfeiffer keeps only the
  feed-forward one; the top adapter goes after the final LayerNorm. AdapterHub has no ModernBERT
  interface; for its pre-LN models (GPT-2, Llama) it places bottleneck adapters at the same spot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ModelError

BERT_HEAD = "[CLS] -> pooler (dense, tanh) -> dropout -> classifier"
ROBERTA_HEAD = "first token -> dense -> tanh -> out_proj (the head's own dense, no pooler)"


# the method settings (config section, key) whose `auto` a family resolves (Family.auto_targets)
AUTO_KEYS = (("lora", "target_modules"), ("ia3", "target_modules"), ("ia3", "feedforward_modules"))


@dataclass(frozen=True)
class Family:
    name: str  # the family's name in messages, the README and `model.layout`
    model_types: tuple[str, ...]  # the `config.model_type` values it covers
    layers: str  # the layer list, from the base model ('*': every entry of a ModuleList)
    attention_out: str  # per layer: what outputs the attention sublayer (projection + dropout), before the residual
    ffn_out: str  # per layer: the same for the feed-forward sublayer
    ffn_norm: str | None  # per layer, post-LN: the LayerNorm after the feed-forward residual (Pfeiffer); pre-LN None
    last_hidden: str  # from the base model: the module whose output is the last hidden state (the top adapter's input)
    lora_targets: tuple[str, ...]  # LoRA's default `target_modules` (PEFT name suffixes): attention query and
    # value (ModernBERT: its fused Wqkv, so query, key and value at once)
    ia3_targets: tuple[str, ...]  # (IA)3's default targets: attention key, value and the feed-forward output
    ia3_feedforward: tuple[str, ...]  # the (IA)3 targets that scale their input (feed-forward layers)
    pooling: str  # how the classification head reads the encoder (README)
    norm_style: Literal["post", "pre"] = "post"  # where the LayerNorms sit relative to the residual adds
    attention_dropout_key: str = "attention_probs_dropout_prob"  # its config's attention-probability dropout
    # the top adapter goes before `last_hidden` (reads its input) instead of after it: ALBERT, whose
    # last layer is shared by every depth, so the first module only the last hidden state feeds is the pooler
    top_before: bool = False
    shared_layers: bool = False  # one layer's weights serve several depths (ALBERT): adapters are shared too
    # AdapterHub's per-layer module holding the attention / the feed-forward adapters ("<block>.adapters.<name>");
    # None: AdapterHub has no interface for the family (or, for the attention block, computes another thing there)
    adapterhub_blocks: tuple[str | None, str] | None = ("attention.output", "output")

    def auto_targets(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """What each `auto` of the method sections resolves to: (section, key) -> the family's names."""
        return dict(zip(AUTO_KEYS, (self.lora_targets, self.ia3_targets, self.ia3_feedforward), strict=True))


def _bert_like(name: str, *model_types: str, pooling: str = ROBERTA_HEAD) -> Family:
    """BERT's layer layout (BertSelfOutput / BertOutput with dense, dropout, LayerNorm)."""
    return Family(name, model_types, "encoder.layer", "attention.output.dropout", "output.dropout", "output.LayerNorm",
                  "encoder.layer.-1.output.LayerNorm", ("query", "value"), ("key", "value", "output.dense"),
                  ("output.dense",), pooling)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    _bert_like("bert", "bert", pooling=BERT_HEAD),
    _bert_like("roberta", "roberta", "xlm-roberta"),
    _bert_like("electra", "electra", pooling="first token -> dense -> GELU -> out_proj (the head's own dense)"),
    Family("deberta-v2", ("deberta-v2",), "encoder.layer", "attention.output.dropout", "output.dropout",
           "output.LayerNorm", "encoder.layer.-1.output.LayerNorm", ("query_proj", "value_proj"),
           ("key_proj", "value_proj", "output.dense"), ("output.dense",),
           "ContextPooler ([CLS] -> dense -> GELU) -> classifier"),
    Family("distilbert", ("distilbert",), "transformer.layer", "attention.out_lin", "ffn.dropout",
           "output_layer_norm", "transformer.layer.-1.output_layer_norm", ("q_lin", "v_lin"),
           ("k_lin", "v_lin", "ffn.lin2"), ("ffn.lin2",), "[CLS] -> pre_classifier -> ReLU -> classifier",
           attention_dropout_key="attention_dropout", adapterhub_blocks=("attention_adapters", "output_adapters")),
    Family("albert", ("albert",), "encoder.albert_layer_groups.*.albert_layers", "attention.output_dropout",
           "ffn_output", "full_layer_layer_norm", "pooler", ("query", "value"), ("key", "value", "ffn_output"),
           ("ffn_output",), BERT_HEAD, top_before=True, shared_layers=True,
           # AdapterHub's ALBERT attention adapter (AlbertAttentionWithAdapters, adapters 1.2-1.3) is
           # called with the attention input and output the other way round: LN(x + A(x) + proj), not
           # the LN(x + proj + A(proj)) ftcli trains; so only the feed-forward adapters export
           adapterhub_blocks=(None, "output_adapters")),
    Family("modernbert", ("modernbert",), "layers", "attn.out_drop", "mlp", None, "final_norm",
           ("attn.Wqkv",), ("attn.Wqkv", "mlp.Wo"), ("mlp.Wo",),
           "mean of tokens or [CLS] (config.classifier_pooling) -> head (dense, GELU, LayerNorm) -> classifier",
           norm_style="pre", attention_dropout_key="attention_dropout", adapterhub_blocks=None),
    Family("mpnet", ("mpnet",), "encoder.layer", "attention.dropout", "output.dropout", "output.LayerNorm",
           "encoder.layer.-1.output.LayerNorm", ("attn.q", "attn.v"), ("attn.k", "attn.v", "output.dense"),
           ("output.dense",), ROBERTA_HEAD, adapterhub_blocks=None),
)}
BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES.values() for t in f.model_types}
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
OVERRIDES = "set model.layout to the family it is laid out like (" + ", ".join(FAMILY_NAMES) + ")"


def family_of(model_type: str, layout: str = "auto", needed_for: str = "") -> Family:
    """The table entry for a model: `layout` when it names a family, else the model type's own; a
    ModelError naming what was looked for and the config key that overrides it."""
    if layout != "auto":
        return FAMILIES[layout]  # the config checked the name
    if model_type not in BY_MODEL_TYPE:
        why = f" ({needed_for})" if needed_for else ""
        raise ModelError(f"model.layout: no layout known for model type {model_type!r}{why}; {OVERRIDES}, "
                         "or give method.lora.target_modules / method.ia3.target_modules explicitly")
    return BY_MODEL_TYPE[model_type]


def family_or_none(model_type: str | None, layout: str = "auto") -> Family | None:
    """The table entry for a model type, or None where the table has none."""
    return FAMILIES[layout] if layout != "auto" else BY_MODEL_TYPE.get(model_type or "")
