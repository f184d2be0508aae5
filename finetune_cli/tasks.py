"""The supported tasks: each data set's Hub id, text fields and label names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the `data.dataset` key
    hub_id: str  # Hugging Face Hub data set id
    text_fields: tuple[str, ...]  # one field, or two for sentence pairs
    label_names: tuple[str, ...]  # label id i is label_names[i] (HF ids)
    has_validation: bool  # whether the Hub copy has an official validation split

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


DATASETS = {
    "imdb": DatasetSpec("imdb", "stanfordnlp/imdb", ("text",), ("neg", "pos"), False),
    "snli": DatasetSpec("snli", "stanfordnlp/snli", ("premise", "hypothesis"),
                        ("entailment", "neutral", "contradiction"), True),
    "ag_news": DatasetSpec("ag_news", "fancyzhx/ag_news", ("text",),
                           ("World", "Sports", "Business", "Sci/Tech"), False),
}

Rows = list[dict[str, Any]]
