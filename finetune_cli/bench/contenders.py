"""`ftcli bench`'s contenders and their inputs: each mode built as `ftcli train` builds it, the plain
Hugging Face reference, and batches of real examples of exactly `seq` tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..config import MethodConfig, ModelConfig, TrainConfig
from ..data.batches import collate
from ..data.objective import SINGLE_LABEL
from ..data.sources import load_sample
from ..data.task import DATASETS
from ..data.tokens import Encoded, encode
from ..errors import ConfigError, FtcliError
from ..methods.predicate import apply_method, count_params
from ..methods.registry import METHODS
from ..models.backbones import load_backbone, minilm_dir, quiet_transformers, source_of
from ..models.tiny import TINY_NAMES
from ..training.devices import distributed_accelerator, seed_everything
from ..training.loop import train_step
from ..training.optim import make_optimizer, make_scheduler

REFERENCE = "reference"
Batch = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Inputs: real examples of the bundled sample, exactly `seq` tokens each (no padding)


@dataclass(frozen=True)
class Inputs:
    train: list[Batch]  # distinct training batches [batch, seq], cycled over the steps
    eval: Batch  # one evaluation batch [eval_batch, seq]
    how: str  # "examples" (real examples truncated to seq) or "packed" (short texts concatenated)
    num_labels: int


def make_inputs(tokenizer: Any, dataset: str, seq: int, batch: int, eval_batch: int,
                max_batches: int = 8) -> Inputs:
    """Tokenize the bundled sample's training split with the product's `data.tokens.encode`, keep the
    examples that fill `seq` tokens, and batch them with the product's `data.batches.collate`.

    Data sets of short texts (SNLI, AG News at seq 128) have too few such examples: their texts
    are then concatenated into one stream and cut into [CLS] chunk [SEP] pieces of `seq` tokens."""
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset: got {dataset!r}, expected one of {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    rows = load_sample(spec)["train"]
    enc = encode(rows, spec, tokenizer, seq)
    keep = [i for i, n in enumerate(enc.lengths) if n == seq]
    need = max(batch, eval_batch)
    how = "examples"
    if len(keep) >= need:
        full = Encoded(enc.table.select(keep))
    else:
        how = "packed"
        full = _packed(rows, spec, tokenizer, seq, need * max_batches)
        if len(full) < need:
            raise FtcliError(f"the {dataset} sample has too little text for {need} inputs of {seq} tokens")
    n = len(full)
    pad_id = tokenizer.pad_token_id or 0
    n_train = max(1, min(max_batches, n // batch))
    train = [collate([(b * batch + i) % n for i in range(batch)], full, pad_id) for b in range(n_train)]
    evaluation = collate([i % n for i in range(eval_batch)], full, pad_id)
    for b in [*train, evaluation]:
        if b["attention_mask"].shape[1] != seq or not bool(b["attention_mask"].all()):
            raise FtcliError(f"internal: a benchmark batch is not exactly {seq} tokens without padding")
    return Inputs(train, evaluation, how, spec.num_labels)


def _packed(rows, spec, tokenizer, seq: int, n: int):
    stream: list[int] = []
    labels: list[int] = []
    ids: list[list[int]] = []
    body = seq - 2
    for row in rows:
        stream += tokenizer(" ".join(row[f] for f in spec.text_fields), add_special_tokens=False)["input_ids"]
        while len(stream) >= body and len(ids) < n:
            chunk, stream = stream[:body], stream[body:]
            ids.append([tokenizer.cls_token_id, *chunk, tokenizer.sep_token_id])
            labels.append(row["label"])
    return Encoded.from_lists(ids, [[0] * seq for _ in ids], labels)



# ----------------------------------------------------------------------------------------------
# Contenders: the product's modes and the plain Hugging Face reference


@dataclass
class Contender:
    name: str
    model: nn.Module | None  # None: it runs in another process (`remote`)
    step: Callable[[Batch], float]  # one training step; returns the loss
    trainable: int
    total: int
    # a contender in another process (AdapterHub's environment: bench/peers.py), which times its
    # own steps: .train(batch index, precision) -> (seconds, loss), .eval(precision) -> seconds, .close()
    remote: Any = None


def reference_source(model_name: str, num_labels: int, tmp: Path) -> str:
    """The weights folder the reference loads: a shipped or `make models` folder, a saved tiny model,
    or the id."""
    if model_name in TINY_NAMES:  # a tiny encoder is built in code: save it once so from_pretrained reads it
        folder = tmp / f"{model_name}-{num_labels}"
        if not folder.exists():
            load_backbone(ModelConfig(name=model_name), num_labels).model.save_pretrained(folder)
        return str(folder)
    return source_of(model_name)


def build_reference(source: str, num_labels: int, seed: int, device: torch.device) -> Contender:
    """The plain Hugging Face loop: every weight trains, torch AdamW with its defaults but the lr."""
    quiet_transformers()
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=METHODS["full"].learning_rate)

    def step(batch: Batch) -> float:
        y = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = model(**inputs, labels=y)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return out.loss.item()

    n = sum(p.numel() for p in model.parameters())
    return Contender(REFERENCE, model, step, n, n)


def build_product(model_name: str, mode: str, bottleneck: int, num_labels: int, seed: int,
                  device: torch.device) -> Contender:
    """A mode built as `ftcli train` builds it; its step is `training.loop.train_step`, the loop's own."""
    cfg = TrainConfig(learning_rate=METHODS[mode].learning_rate)  # auto, as `ftcli train` resolves it
    seed_everything(seed)
    backbone = load_backbone(ModelConfig(name=model_name), num_labels)
    model = backbone.model
    is_trained = apply_method(model, MethodConfig(mode=mode, bottleneck=bottleneck))
    counts = count_params(model, is_trained, backbone.params)
    model.to(device).train()
    optimizer = make_optimizer(model, is_trained, cfg)
    scheduler = make_scheduler(optimizer, 10**6, cfg.warmup_ratio)  # a long schedule: lr never hits 0

    accelerator = distributed_accelerator()

    def step(batch: Batch) -> float:
        # the loop's own step; bench times single-label batches
        return train_step(model, batch, optimizer, scheduler, accelerator, cfg.max_grad_norm, SINGLE_LABEL)

    return Contender(mode, model, step, counts.trainable, counts.total)


def build(name: str, model_name: str, bottleneck: int, num_labels: int, seed: int, device: torch.device,
          tmp: Path) -> Contender:
    if name == REFERENCE:
        return build_reference(reference_source(model_name, num_labels, tmp), num_labels, seed, device)
    return build_product(model_name, name, bottleneck, num_labels, seed, device)


def tokenizer_for(model_name: str):
    """The backbone's tokenizer (the tiny models use MiniLM's bert-base-uncased vocabulary)."""
    return AutoTokenizer.from_pretrained(str(minilm_dir()) if model_name in TINY_NAMES else source_of(model_name))
