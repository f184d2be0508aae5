"""Frozen-encoder feature cache: when everything that trains sits above a frozen encoder (modes
`top` and `head`), run the encoder once per example and train the part above it on its output.

BERT's classifier reads one position: the pooler is `tanh(dense(hidden[:, 0]))`, and the top
adapter is position-wise, so one [CLS] vector per example is all that needs keeping (1.5 KB for
MiniLM). The cache is exact only if the frozen encoder gives the same output every time, so it runs
without dropout (eval mode); that is the one change to the recipe (README: "Cached frozen encoder").
The trained part is the model's own modules in the model's own order, nothing re-implemented.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..methods.adapters import Adapter, bypassed, top_adapter
from ..models.families import FAMILIES

Batch = dict[str, torch.Tensor]
Predicate = Callable[[str], bool]


@dataclass(frozen=True)
class Cut:
    """Where the frozen encoder ends: what to keep per example and what runs on it."""

    keep: str  # "cls": last hidden state at [CLS], [1, d]; "pooled": the pooler's output, [d]
    tail: nn.Sequential  # the model's modules that turn kept features [batch, ...] into logits


def _has_bert_head(model: nn.Module) -> bool:
    """`logits = classifier(dropout(pooler(sequence_output)))`: BertForSequenceClassification's layout
    (other families run uncached: correct, only slower)."""
    from transformers.models.bert.modeling_bert import BertPooler

    prefix = model.base_model_prefix
    children = {name for name, _ in model.named_children()}
    return (children == {prefix, "dropout", "classifier"} and isinstance(model.classifier, nn.Linear)
            and isinstance(model.dropout, nn.Dropout)
            and isinstance(getattr(getattr(model, prefix), "pooler", None), BertPooler))


def find_cut(model: nn.Module, is_trained: Predicate) -> Cut | None:
    """The cut below which nothing trains, or None (something in the encoder trains, or the model
    is not laid out like BERT's classifier). Found from the predicate and module types only."""
    if not _has_bert_head(model):
        return None
    prefix = model.base_model_prefix
    backbone = getattr(model, prefix)
    top = top_adapter(model, FAMILIES["bert"])
    above = {id(p) for p in backbone.pooler.parameters()} | {id(p) for p in (top.parameters() if top else ())}
    if any(is_trained(n) for n, p in model.named_parameters() if n.startswith(prefix + ".") and id(p) not in above):
        return None
    pooler_trains = any(is_trained(f"{prefix}.pooler.{n}") for n, _ in backbone.pooler.named_parameters())
    if top is None and not pooler_trains:
        return Cut("pooled", nn.Sequential(model.dropout, model.classifier))
    return Cut("cls", nn.Sequential(*([top] if top else []), backbone.pooler, model.dropout, model.classifier))


def example_keys(batch: Batch) -> list[bytes]:
    """One key per row: a digest of its real (unpadded, right-padded) tokens and segment ids."""
    ids, types_ = batch["input_ids"].cpu(), batch.get("token_type_ids")
    types_ = torch.zeros_like(ids) if types_ is None else types_.cpu()
    lengths = batch["attention_mask"].sum(1).tolist() if "attention_mask" in batch else [ids.shape[1]] * len(ids)
    return [hashlib.blake2b(ids[i, :n].numpy().tobytes() + types_[i, :n].numpy().tobytes(),
                            digest_size=16).digest() for i, n in enumerate(lengths)]


class CachedClassifier(nn.Module):
    """Stands in for the classifier in the loop: `forward(**inputs)` returns `.logits` like the
    Hugging Face model (the loss is the objective's), but takes the frozen encoder's output from a
    cache keyed by the example's tokens (filled on first sight, so epoch 1 runs the encoder and
    later epochs do not). With `store=False` it recomputes every time: the uncached path the tests compare against."""

    def __init__(self, model: nn.Module, cut: Cut, store: bool = True):
        super().__init__()
        self.model, self.cut, self.store = model, cut, store
        self.cache: dict[bytes, torch.Tensor] = {}
        self.encoder_examples = 0  # examples the frozen encoder has run on (tests, benchmarks)

    def train(self, mode: bool = True) -> CachedClassifier:
        super().train(mode)
        getattr(self.model, self.model.base_model_prefix).eval()  # frozen encoder: no dropout, ever
        self.cut.tail.train(mode)  # the trained part keeps the model's dropout before the classifier
        return self

    @torch.no_grad()
    def encode(self, batch: Batch) -> torch.Tensor:
        """Kept features of a batch from the frozen encoder: [batch, 1, d] (cls) or [batch, d] (pooled)."""
        backbone = getattr(self.model, self.model.base_model_prefix)
        with bypassed(m for m in self.cut.tail if isinstance(m, Adapter)):  # the top adapter trains: tail, not cache
            out = backbone(**batch)
        self.encoder_examples += batch["input_ids"].shape[0]
        return out.last_hidden_state[:, :1] if self.cut.keep == "cls" else out.pooler_output

    def features(self, inputs: Batch) -> torch.Tensor:
        """Kept features of every row, from the cache where present: [batch, ...]."""
        if not self.store:
            return self.encode(inputs)
        keys = example_keys(inputs)
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            rows = torch.tensor(missing, device=inputs["input_ids"].device)
            width = int(inputs["attention_mask"][rows].sum(1).max()) if "attention_mask" in inputs else None
            new = self.encode({k: v[rows, :width] for k, v in inputs.items()})
            with torch.inference_mode(False):  # a tensor made during evaluation must be usable in training
                for i, f in zip(missing, new, strict=True):
                    self.cache[keys[i]] = f.clone()
        return torch.stack([self.cache[k] for k in keys])

    def forward(self, **inputs: torch.Tensor) -> SequenceClassifierOutput:
        """The model's logits (the loss is the objective's, as for the plain model)."""
        return SequenceClassifierOutput(logits=self.cut.tail(self.features(inputs)))  # [batch, num_labels]


def cached_classifier(model: nn.Module, is_trained: Predicate) -> CachedClassifier | None:
    """The cached stand-in for `model`, or None when something below the head trains."""
    cut = find_cut(model, is_trained)
    return None if cut is None else CachedClassifier(model, cut)
