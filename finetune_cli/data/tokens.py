"""Stage 5, checked rows -> tokens: each split tokenized without padding (batches.py pads each batch
to its own longest example) with batched `map`, cached by the fingerprint of its rows, the
tokenizer and max_length."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import CACHE_VERSION, cache_path, cached_map, digest
from .checks import Split
from .objective import SINGLE_LABEL, Objective
from .task import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    """A tokenized split: per example unpadded `input_ids`, `token_type_ids`, its `length` and (when
    `labeled`) its `label`, in an Arrow-backed `datasets.Dataset` (memory-mapped from the cache when
    it came from there), read a batch at a time."""

    table: Any  # datasets.Dataset
    labeled: bool = True
    cache: str = "off"  # the tokenization cache: hit | miss | off (not cacheable)
    objective: Objective = SINGLE_LABEL  # the task's: how its labels become tensors (batches.collate)

    def __len__(self) -> int:
        return len(self.table)

    @functools.cached_property
    def lengths(self) -> list[int]:
        return [int(n) for n in self.table.with_format("numpy")["length"]]

    def rows(self, indices: list[int]) -> dict[str, list]:
        """The columns of the examples at `indices`."""
        return self.table[indices]

    @classmethod
    def from_lists(cls, input_ids: list[list[int]], token_type_ids: list[list[int]],
                   labels: list[int] | None) -> Encoded:
        """Already tokenized examples (e.g. the benchmark's packed ones)."""
        columns = {"input_ids": input_ids, "token_type_ids": token_type_ids, "length": [len(i) for i in input_ids]}
        if labels is not None:
            columns["label"] = labels
        return cls(datasets_module().Dataset.from_dict(columns, features=encoded_features(labels is not None)),
                   labels is not None)


def datasets_module():
    import datasets  # lazy: ~0.6 s to import, and `ftcli --help` must stay fast

    datasets.disable_progress_bars()
    return datasets


def encoded_features(labeled: bool, objective: Objective = SINGLE_LABEL, num_labels: int = 0) -> Any:
    ds = datasets_module()
    columns = {"input_ids": ds.Sequence(ds.Value("int32")), "token_type_ids": ds.Sequence(ds.Value("int8")),
               "length": ds.Value("int32")}
    return ds.Features({**columns, "label": objective.label_feature(num_labels)} if labeled else columns)


def tokenize_batch(batch: dict[str, list], text_fields: tuple[str, ...], tokenizer: Any, max_length: int,
                   labeled: bool) -> dict[str, list]:
    """Tokenize a batch of rows without padding (batches are padded to their own longest example)."""
    enc = tokenizer(*[batch[f] for f in text_fields], truncation=True, max_length=max_length, padding=False,
                    return_token_type_ids=True)
    out = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
           "length": [len(ids) for ids in enc["input_ids"]]}
    if labeled:
        out["label"] = batch["label"]
    return out


@functools.lru_cache(maxsize=8)
def _backend_digest(definition: str) -> str:
    """The digest of a fast tokenizer's JSON definition without its truncation and padding settings,
    which the tokenizer call itself changes (`truncation=True, max_length=...`)."""
    spec = json.loads(definition)
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """What identifies a tokenizer's output: its full definition (vocabulary, normalizer, special
    tokens) for a fast tokenizer; its class and vocabulary otherwise."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return _backend_digest(backend.to_str())
    vocab = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    return hashlib.sha256(vocab.encode()).hexdigest()


def encode(rows: Any, spec: Task, tokenizer: Any, max_length: int, labeled: bool = True,
           cache: Path | None = None) -> Encoded:
    """Tokenize rows (a list of dicts, or a `datasets.Dataset`, holding the task's text columns and,
    when `labeled`, `label`) with batched `map`; `cache`: an Arrow file kept for the next run with the
    same data, tokenizer and max_length (read back instead of tokenizing when it exists)."""
    ds = datasets_module()
    if isinstance(rows, list):
        columns = {f: [r[f] for r in rows] for f in spec.text_fields}
        if labeled:
            columns["label"] = [r["label"] for r in rows]
        rows = ds.Dataset.from_dict(columns)
    features = encoded_features(labeled, spec.objective, spec.num_labels)
    table, state = cached_map(rows, tokenize_batch, cache, features=features,
                              fn_kwargs={"text_fields": spec.text_fields, "tokenizer": tokenizer,
                                         "max_length": max_length, "labeled": labeled})
    return Encoded(table, labeled, state, spec.objective)


def encode_split(split: Split, spec: Task, tokenizer: Any, max_length: int) -> Encoded:
    """Tokenize a split: its whole parent once (cached by the parent's content, the tokenizer and
    max_length, so every seed, size and carved split of a sweep reads the same file), then its rows."""
    key = None if split.key is None else \
        digest([CACHE_VERSION, split.key, tokenizer_fingerprint(tokenizer), max_length])
    path = cache_path("tokenized", key)
    if path is None or not path.exists():  # minutes for a large split, with nothing else on screen
        log.info("tokenizing %s rows%s", f"{len(split.parent):,}", "" if path is None else f" (kept in {path.parent})")
    whole = encode(split.parent, spec, tokenizer, max_length, cache=path)
    if split.indices is None:
        return whole
    return Encoded(whole.table.select(split.indices), True, whole.cache, whole.objective)
