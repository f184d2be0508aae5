"""The one train/eval loop shared by every method and task type.

The loop never looks at the method or the task: `methods.predicate.apply_method` has already frozen what must
not train (the optimizer gets exactly the parameters the method's predicate selected), and the task's
objective turns logits and labels into the loss. Validation, the kept best state and early stopping
are the Evaluator's (evaluate.py); the loop reads its `stop` flag.
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
from torch import nn

from ..data.batches import BatchPlan, make_loader
from ..data.metrics import Evaluation
from ..data.objective import Objective
from ..errors import FtcliError
from ..methods.predicate import trained_state_dict
from ..runs.records import EpochRecord
from .checkpoint import LoopState, load_checkpoint, save_checkpoint
from .devices import distributed_accelerator
from .evaluate import Evaluator, evaluate, evaluation_record
from .experiment import Experiment
from .frozen_encoder import CachedClassifier, cached_classifier
from .optim import make_optimizer, make_scheduler, trained_params
from .progress import TrainProgress

log = logging.getLogger(__name__)


class RunFailed(FtcliError):
    """Training cannot go on (e.g. the loss became NaN); the run is marked `failed`."""


@dataclass
class TrainResult:
    """What `train` hands back: the best evaluation (its trained state is loaded into the model), every
    evaluation's record, throughput, and the accelerator and prepared test loader, with which the
    caller tests the artifact reloaded from disk."""

    best: EpochRecord  # the best evaluation's record (as written to metrics.jsonl)
    epochs_completed: int  # fewer than train.epochs when early stopping ended the run
    best_state: dict[str, torch.Tensor]  # its trained parameters
    metrics: list[EpochRecord]  # one record per evaluation
    train_seconds: float
    train_examples_per_s: float
    pad_ratio: float  # tokens computed / real tokens, mean over epochs
    device: str
    num_processes: int
    cached_features: str | None  # what the frozen-encoder cache kept per example; None: no cache
    accelerator: Any
    test_loader: Any


@dataclass
class Prepared:
    """The loop's objects after accelerate's `prepare`."""

    accelerator: Any
    model: nn.Module  # what runs forward: the plain model, or its frozen-encoder cached stand-in
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: Any
    val_loader: Any
    test_loader: Any
    plan: BatchPlan  # the training batches (kept: accelerate wraps it when sharding across processes)
    cached: CachedClassifier | None
    steps_per_epoch: int  # optimizer steps


def prepare_loop(exp: Experiment) -> Prepared:
    """Loaders, optimizer, schedule and the frozen-encoder cache, prepared by accelerate."""
    cfg = exp.cfg.train
    accelerator = distributed_accelerator(cfg.mixed_precision, cfg.grad_accumulation_steps)
    pad_id, group = exp.backbone.tokenizer.pad_token_id, cfg.group_by_length
    loaders = [make_loader(exp.encoded["train"], cfg.batch_size, pad_id, True, exp.cfg.seed, group)]
    loaders += [make_loader(exp.encoded[s], cfg.eval_batch_size, pad_id, group_by_length=group)
                for s in ("validation", "test")]
    plan = loaders[0].batch_sampler
    optimizer = make_optimizer(exp.model, exp.is_trained, cfg)
    cached = cached_classifier(exp.model, exp.is_trained) if cfg.cache_frozen_encoder else None
    model, optimizer, *loaders = accelerator.prepare(cached or exp.model, optimizer, *loaders)
    steps_per_epoch = math.ceil(len(loaders[0]) / cfg.grad_accumulation_steps)
    scheduler = make_scheduler(optimizer, cfg.epochs * steps_per_epoch, cfg.warmup_ratio)
    return Prepared(accelerator, model, optimizer, scheduler, *loaders, plan, cached, steps_per_epoch)


def train_step(model, batch, optimizer, scheduler, accelerator, max_grad_norm, objective: Objective) -> float:
    """One batch (also what `ftcli bench` times); returns its loss. With gradient accumulation the
    optimizer steps on every Nth batch and at the end of the epoch (accelerate divides the loss by N,
    skips the prepared optimizer's step and zero_grad until the gradients sync, and, across
    processes, skips the all-reduce of the batches in between)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # a copy: bench reuses its batches
    with accelerator.accumulate(model):
        loss = objective.loss(model(**inputs).logits, batch["labels"])
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


def train_one_epoch(run: Prepared, epoch: int, evaluator: Evaluator, progress, max_grad_norm,
                    objective: Objective) -> float | None:
    """One pass over the training batches; returns the mean training loss of this process, or None
    when early stopping ended the run at a mid-epoch evaluation."""
    run.train_loader.set_epoch(epoch - 1)  # batches depend on seed and epoch only
    run.plan.set_epoch(epoch - 1)
    run.model.train()
    total, steps = 0.0, 0
    for batch in run.train_loader:
        try:
            loss = train_step(run.model, batch, run.optimizer, run.scheduler, run.accelerator, max_grad_norm, objective)
        except RunFailed as e:
            raise RunFailed(f"{e} (step {progress.step + 1})") from None
        total, steps = total + loss, steps + 1
        progress.advance(loss)
        if run.accelerator.sync_gradients:
            evaluator.after_step(epoch, run.scheduler.last_epoch, total / steps)
            if evaluator.stop:
                return None
            run.model.train()  # an evaluation left it in eval mode
    return total / max(1, steps)


def end_epoch(exp: Experiment, run: Prepared, evaluator: Evaluator, epoch: int, train_loss: float,
              seconds: float) -> Evaluation:
    """The epoch's validation, kept as its record with the epoch's throughput."""
    train_loss = run.accelerator.reduce(torch.tensor(train_loss, device=run.accelerator.device), "mean").item()
    val = evaluator.evaluate()
    n = len(exp.encoded["train"])
    evaluator.keep(evaluation_record(
        val, epoch=epoch, step=run.scheduler.last_epoch, epoch_progress=float(epoch), train_loss=train_loss,
        train_seconds=seconds, train_examples_per_s=n / seconds, pad_ratio=run.plan.pad_ratio(),
        learning_rate_end=run.scheduler.get_last_lr()[0]))
    loop = evaluator.loop
    loop.epoch, loop.train_seconds, loop.examples = epoch, loop.train_seconds + seconds, loop.examples + n
    return val


def start_loop(exp: Experiment, run: Prepared, checkpoint: Path | None, resume: bool) -> LoopState:
    """A fresh loop state, or the checkpoint's (model, optimizer, schedule and RNG restored)."""
    if resume and checkpoint is not None and checkpoint.exists():
        loop = load_checkpoint(checkpoint, exp.model, exp.is_trained, run.optimizer, run.scheduler)
        log.info("resuming after epoch %d of %d from %s", loop.epoch, exp.cfg.train.epochs, checkpoint)
        return loop
    return LoopState(epoch=0, metrics=[], best=None, best_state={}, train_seconds=0.0, examples=0)


def train(exp: Experiment, on_epoch, console=None, checkpoint: Path | None = None,
          resume: bool = False) -> TrainResult:
    """Train, evaluate after each epoch (and every train.eval_every_steps), and restore the best
    evaluation by `train.select_metric` on validation. `on_epoch(records)` gets every record so far
    after each evaluation; with `checkpoint`, the loop state is saved there at every epoch end, and
    `resume` continues from it. The model ends with the best evaluation's trained state loaded."""
    cfg, run = exp.cfg.train, prepare_loop(exp)
    loop = start_loop(exp, run, checkpoint, resume)
    evaluator = Evaluator(functools.partial(evaluate, run.model, run.val_loader, run.accelerator, exp.objective),
                          loop, functools.partial(trained_state_dict, exp.model, exp.is_trained), cfg.select_metric,
                          cfg.early_stopping_patience, cfg.eval_every_steps, run.steps_per_epoch, on_epoch)
    steps, main = len(run.train_loader), run.accelerator.is_main_process
    with TrainProgress(cfg.epochs, steps, console, main, done=loop.epoch * steps) as progress:
        for epoch in range(loop.epoch + 1, cfg.epochs + 1):
            if evaluator.stop:  # also after a resume
                break
            started, evaluator.seconds = time.perf_counter(), 0.0
            train_loss = train_one_epoch(run, epoch, evaluator, progress, cfg.max_grad_norm, exp.objective)
            if train_loss is None:
                break  # early stopping, mid-epoch (a kill before this point replays to the same stop)
            val = end_epoch(exp, run, evaluator, epoch, train_loss, time.perf_counter() - started - evaluator.seconds)
            if checkpoint is not None and main:
                save_or_record(checkpoint, exp, run, loop, on_epoch)
            progress.end_epoch(epoch, val)
            on_epoch(loop.metrics)
    exp.model.load_state_dict(loop.best_state, strict=False)  # the paper's model selection: best on validation
    return result_of(run, loop)


def save_or_record(checkpoint: Path, exp: Experiment, run: Prepared, loop: LoopState, on_epoch) -> None:
    """The epoch's checkpoint; when it cannot be written (a full disk), the epoch's small metrics
    record still is, before the error ends the run: an evaluated epoch is never lost."""
    try:
        save_checkpoint(checkpoint, exp.model, exp.is_trained, run.optimizer, run.scheduler, loop)
    except BaseException:
        try:
            on_epoch(loop.metrics)
        except Exception as e:  # noqa: BLE001 - the checkpoint's error is the one to report
            log.warning("could not record the epoch either: %s", e)
        raise


def result_of(run: Prepared, loop: LoopState) -> TrainResult:
    ratios = [m.pad_ratio for m in loop.metrics if m.pad_ratio is not None]  # epoch ends only
    return TrainResult(
        best=loop.best, epochs_completed=loop.epoch, best_state=loop.best_state, metrics=loop.metrics,
        train_seconds=loop.train_seconds, train_examples_per_s=loop.examples / max(loop.train_seconds, 1e-9),
        pad_ratio=sum(ratios) / max(1, len(ratios)), device=str(run.accelerator.device),
        num_processes=run.accelerator.num_processes,
        cached_features=None if run.cached is None else run.cached.cut.keep,
        accelerator=run.accelerator, test_loader=run.test_loader)
