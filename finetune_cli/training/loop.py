"""The one train/eval loop shared by every mode.

The loop never looks at the mode: `methods.apply_method` has already frozen what must not train,
and the optimizer gets exactly the parameters the mode's predicate selected.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from torch import nn

from ..config import RunConfig, SelectMetric, TrainConfig
from ..data.load import LoadedData, load_data
from ..data.metrics import Evaluation, evaluation_from, improves
from ..data.task import DatasetSpec
from ..data.tokens import Encoded, encode_split, make_loader
from ..errors import FtcliError
from ..methods.registry import ParamCounts, Predicate, apply_method, count_params, trained_state_dict
from ..models import Backbone, load_backbone, name_labels
from ..training.checkpoint import LoopState, load_checkpoint, save_checkpoint
from ..training.frozen_encoder import cached_classifier
from ..training.progress import TrainProgress

log = logging.getLogger(__name__)


class RunFailed(FtcliError):
    """Training cannot go on (e.g. the loss became NaN); the run is marked `failed`."""


@dataclass
class Experiment:
    """Everything a run needs, built from a config before the loop starts."""

    cfg: RunConfig
    data: LoadedData
    backbone: Backbone
    is_trained: Predicate  # the one predicate: what trains and what is saved
    counts: ParamCounts
    encoded: dict[str, Encoded]  # train / validation / test, tokenized without padding

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    @property
    def spec(self) -> DatasetSpec:
        return self.data.spec


@dataclass
class TrainResult:
    """What `train` hands back: the best epoch (its trained state is loaded into the model), every
    epoch's record, throughput, and the accelerator and prepared test loader, with which the caller
    tests the artifact reloaded from disk."""

    best: dict[str, Any]  # the best evaluation's record (as written to metrics.jsonl)
    epochs_completed: int  # fewer than train.epochs when early stopping ended the run
    best_state: dict[str, torch.Tensor]  # its trained parameters
    metrics: list[dict[str, Any]]  # one record per epoch
    train_seconds: float
    train_examples_per_s: float
    pad_ratio: float  # tokens computed / real tokens, mean over epochs
    device: str
    num_processes: int
    cached_features: str | None  # what the frozen-encoder cache kept per example; None: no cache
    accelerator: Any
    test_loader: Any


def distributed_state():
    """accelerate's process state; without CUDA, several processes (torchrun) use gloo on the CPU."""
    return PartialState(cpu=not torch.cuda.is_available())


def distributed_accelerator(mixed_precision: str = "no", grad_accumulation_steps: int = 1):
    """An accelerate Accelerator for this process (CPU, one GPU, or one rank of several)."""
    distributed_state()
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available(),
                       gradient_accumulation_steps=grad_accumulation_steps)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    set_seed(seed)


def prepare_experiment(cfg: RunConfig) -> Experiment:
    """Load data and backbone, apply the mode's surgery, tokenize. Fails before any training."""
    data = load_data(cfg.data, cfg.seed)
    seed_everything(cfg.seed)  # the new head and the adapters are initialised under the run seed
    backbone = load_backbone(cfg.model, data.spec.num_labels)
    name_labels(backbone.model, data.spec.label_names)
    is_trained = apply_method(backbone.model, cfg.method)
    counts = count_params(backbone.model, is_trained, backbone.params)
    encoded = {split: encode_split(part, data.spec, backbone.tokenizer, cfg.model.max_length)
               for split, part in data.parts.items()}
    return Experiment(cfg, data, backbone, is_trained, counts, encoded)


def make_optimizer(model: nn.Module, is_trained: Predicate, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over exactly the trained parameters; no weight decay on biases and LayerNorms."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if is_trained(name):
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel over all tensors instead of a Python loop per tensor (~10% of a full step on CPU)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate, fused=True)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up over `warmup_ratio` of the steps, then linear decay to zero."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trained_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def evaluate(model: nn.Module, loader, accelerator) -> Evaluation:
    """Loss, accuracy, macro-F1, per-class scores and confusion matrix over a loader (each example
    counted once across processes: gather_for_metrics drops the padding of the last batch)."""
    model.eval()
    loss_sum, labels_seen, predicted = 0.0, [], []
    with torch.inference_mode(), accelerator.autocast():
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits  # [batch, num_labels]
            logits, labels = accelerator.gather_for_metrics((logits, labels))
            loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
            labels_seen += labels.tolist()
            predicted += logits.argmax(-1).tolist()
            num_labels = logits.shape[-1]
    return evaluation_from(labels_seen, predicted, num_labels, loss_sum / len(labels_seen))


def train_step(model, batch, optimizer, scheduler, accelerator, max_grad_norm) -> float:
    """One batch (also what `ftcli bench` times); returns its loss. With gradient accumulation the
    optimizer steps on every Nth batch and at the end of the epoch (accelerate divides the loss by N,
    skips the prepared optimizer's step and zero_grad until the gradients sync, and, across
    processes, skips the all-reduce of the batches in between)."""
    with accelerator.accumulate(model):
        loss = model(**batch).loss
        value = loss.item()
        if not math.isfinite(value):
            raise RunFailed(f"the training loss became {value}; lower train.learning_rate or set train.max_grad_norm")
        accelerator.backward(loss)
        if max_grad_norm is not None and accelerator.sync_gradients:
            accelerator.unscale_gradients()  # fp16 loss scaling; a no-op otherwise
            torch.nn.utils.clip_grad_norm_(trained_params(optimizer), max_grad_norm, foreach=True)
        optimizer.step()
        if accelerator.sync_gradients:  # the schedule counts optimizer steps
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return value


def train_one_epoch(model, loader, optimizer, scheduler, accelerator, max_grad_norm, progress,
                    after_step=None) -> float:
    """One pass over the training loader; returns the mean training loss of this process.
    `after_step(mean loss so far)` runs after every optimizer step (mid-epoch evaluation)."""
    model.train()
    total, steps = 0.0, 0
    for batch in loader:
        try:
            loss = train_step(model, batch, optimizer, scheduler, accelerator, max_grad_norm)
        except RunFailed as e:
            raise RunFailed(f"{e} (step {progress.step + 1})") from None
        total, steps = total + loss, steps + 1
        progress.advance(loss)
        if after_step is not None and accelerator.sync_gradients:
            after_step(total / steps)
            model.train()  # an evaluation left it in eval mode
    return total / max(1, steps)


class _PatienceRanOut(Exception):
    """Raised by a mid-epoch evaluation to leave the epoch early (early stopping)."""


def mean_pad_ratio(records: list[dict]) -> float:
    """Mean over the epochs (mid-epoch evaluation records have none)."""
    ratios = [m["pad_ratio"] for m in records if "pad_ratio" in m]
    return sum(ratios) / max(1, len(ratios))


RECORD_MATRIX_MAX_LABELS = 100  # more labels: no confusion matrix per record (1,000 labels = 1M numbers)


def validation_fields(val: Evaluation) -> dict[str, Any]:
    """An evaluation on validation as fields of its metrics.jsonl record (val_loss and val_accuracy
    first, as in records written before macro-F1 was measured). Every record (and the checkpoint,
    which holds them all) would carry a labels x labels matrix, so above RECORD_MATRIX_MAX_LABELS
    labels only summary.json keeps one (the test split's)."""
    fields = {"val_loss": val.loss, "val_accuracy": val.accuracy, "val_macro_f1": val.macro_f1,
              "val_per_class": val.per_class_json()}
    if len(val.confusion_matrix) <= RECORD_MATRIX_MAX_LABELS:
        fields["val_confusion_matrix"] = val.confusion_matrix
    return fields


def patience_ran_out(loop: LoopState, patience: int | None) -> bool:
    """Early stopping: the last `patience` evaluations in a row brought no better validation value of
    the selection metric (counted by `keep_record`)."""
    return patience is not None and bool(loop.metrics) and \
        loop.metrics[-1].get("evals_without_improvement", 0) >= patience


def keep_record(loop: LoopState, record: dict, trained_state, metric: SelectMetric) -> None:
    """Add an evaluation's record; the best validation value of `metric` so far is the state kept."""
    key = f"val_{metric}"
    improved = loop.best is None or improves(record[key], loop.best[key], metric)
    previous = loop.metrics[-1].get("evals_without_improvement", 0) if loop.metrics else 0
    record["evals_without_improvement"] = 0 if improved else previous + 1
    loop.metrics = [*loop.metrics, record]
    if improved:
        loop.best, loop.best_state = record, trained_state()


def train(exp: Experiment, on_epoch, console=None, checkpoint: Path | None = None,
          resume: bool = False) -> TrainResult:
    """Train, evaluate after each epoch, and restore the best evaluation by `train.select_metric` on
    validation (accuracy by default).

    `on_epoch(metrics)` gets the records of all epochs so far after every epoch. With `checkpoint`,
    the loop state is saved there at every epoch end, and `resume` continues from it.
    The model ends with the best epoch's trained state loaded.
    """

    cfg = exp.cfg.train
    accelerator = distributed_accelerator(cfg.mixed_precision, cfg.grad_accumulation_steps)
    pad_id = exp.backbone.tokenizer.pad_token_id
    group = cfg.group_by_length
    train_loader = make_loader(exp.encoded["train"], cfg.batch_size, pad_id, True, exp.cfg.seed, group)
    val_loader = make_loader(exp.encoded["validation"], cfg.eval_batch_size, pad_id, group_by_length=group)
    test_loader = make_loader(exp.encoded["test"], cfg.eval_batch_size, pad_id, group_by_length=group)
    plan = train_loader.batch_sampler  # kept: accelerate wraps it when sharding across processes
    optimizer = make_optimizer(exp.model, exp.is_trained, cfg)
    cached = cached_classifier(exp.model, exp.is_trained) if cfg.cache_frozen_encoder else None
    model, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
        cached or exp.model, optimizer, train_loader, val_loader, test_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accumulation_steps)  # optimizer steps
    scheduler = make_scheduler(optimizer, cfg.epochs * steps_per_epoch, cfg.warmup_ratio)
    plain = exp.model  # moved to the device by prepare; what is checkpointed and saved

    loop = LoopState(epoch=0, metrics=[], best=None, best_state={}, train_seconds=0.0, examples=0)
    if resume and checkpoint is not None and checkpoint.exists():
        loop = load_checkpoint(checkpoint, plain, exp.is_trained, optimizer, scheduler)
        log.info("resuming after epoch %d of %d from %s", loop.epoch, cfg.epochs, checkpoint)
    steps = len(train_loader)
    state = functools.partial(trained_state_dict, plain, exp.is_trained)
    with TrainProgress(cfg.epochs, steps, console, accelerator.is_main_process, done=loop.epoch * steps) as progress:
        for epoch in range(loop.epoch + 1, cfg.epochs + 1):
            if patience_ran_out(loop, cfg.early_stopping_patience):  # also after a resume
                break
            train_loader.set_epoch(epoch - 1)  # batches depend on seed and epoch only
            plan.set_epoch(epoch - 1)
            eval_seconds = [0.0]  # mid-epoch evaluations, not counted as training time

            def evaluate_mid_epoch(train_loss: float, epoch: int = epoch, eval_seconds: list = eval_seconds) -> None:
                step = scheduler.last_epoch  # optimizer steps so far (restored on resume)
                every = cfg.eval_every_steps
                if every is None or step % every or step % steps_per_epoch == 0:  # the epoch end evaluates
                    return
                started = time.perf_counter()
                val = evaluate(model, val_loader, accelerator)
                keep_record(loop, {"epoch": epoch, "step": step, "epoch_progress": step / steps_per_epoch,
                                   "train_loss": train_loss, **validation_fields(val)}, state, cfg.select_metric)
                eval_seconds[0] += time.perf_counter() - started
                on_epoch(loop.metrics)
                if patience_ran_out(loop, cfg.early_stopping_patience):
                    raise _PatienceRanOut

            start = time.perf_counter()
            try:
                train_loss = train_one_epoch(model, train_loader, optimizer, scheduler, accelerator,
                                             cfg.max_grad_norm, progress, evaluate_mid_epoch)
            except _PatienceRanOut:
                break  # mid-epoch: the run ends here (a kill before this point replays to the same stop)
            seconds = time.perf_counter() - start - eval_seconds[0]
            train_loss = accelerator.reduce(torch.tensor(train_loss, device=accelerator.device), "mean").item()
            val = evaluate(model, val_loader, accelerator)
            record = {"epoch": epoch, "step": scheduler.last_epoch, "epoch_progress": float(epoch),
                      "train_loss": train_loss, **validation_fields(val), "train_seconds": seconds,
                      "train_examples_per_s": len(exp.encoded["train"]) / seconds, "pad_ratio": plan.pad_ratio(),
                      "learning_rate_end": scheduler.get_last_lr()[0]}
            keep_record(loop, record, state, cfg.select_metric)
            loop.epoch = epoch
            loop.train_seconds += seconds
            loop.examples += len(exp.encoded["train"])
            if checkpoint is not None and accelerator.is_main_process:
                save_checkpoint(checkpoint, plain, exp.is_trained, optimizer, scheduler, loop)
            progress.end_epoch(epoch, val)
            on_epoch(loop.metrics)
    plain.load_state_dict(loop.best_state, strict=False)  # the paper's model selection: best on validation
    return TrainResult(
        best=loop.best, epochs_completed=loop.epoch, best_state=loop.best_state, metrics=loop.metrics,
        train_seconds=loop.train_seconds,
        train_examples_per_s=loop.examples / max(loop.train_seconds, 1e-9),
        pad_ratio=mean_pad_ratio(loop.metrics), device=str(accelerator.device),
        num_processes=accelerator.num_processes, cached_features=None if cached is None else cached.cut.keep,
        accelerator=accelerator, test_loader=test_loader)
