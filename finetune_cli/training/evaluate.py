"""Evaluation on a split, and the Evaluator: validation during training, the kept best state, and
early stopping as a flag the loop reads (no exception, no closure)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.metrics import Evaluation, improves
from ..data.objective import Objective
from ..runs.records import EpochRecord
from .checkpoint import LoopState

RECORD_MATRIX_MAX_LABELS = 100  # more labels: no confusion matrix per record (1,000 labels = 1M numbers)


def evaluate(model: nn.Module, loader, accelerator, objective: Objective) -> Evaluation:
    """The objective's scores over a loader (each example counted once across processes:
    gather_for_metrics drops the padding of the last batch)."""
    model.eval()
    loss_sum, labels_seen, predicted = 0.0, [], []
    with torch.inference_mode(), accelerator.autocast():
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits  # [batch, outputs]
            logits, labels = accelerator.gather_for_metrics((logits, labels))
            loss_sum += objective.loss(logits, labels, reduction="sum").item()
            labels_seen += labels.tolist()
            predicted += objective.predictions(logits)
            outputs = logits.shape[-1]
    return objective.score(labels_seen, predicted, outputs, loss_sum / len(labels_seen))


def evaluation_record(val: Evaluation, **fields: Any) -> EpochRecord:
    """An evaluation on validation as its metrics.jsonl record. Every record (and the checkpoint, which
    holds them all) would carry a labels x labels matrix, so above RECORD_MATRIX_MAX_LABELS labels
    only summary.json keeps one (the test split's)."""
    matrix = val.confusion_matrix
    matrix = matrix if matrix is not None and len(matrix) <= RECORD_MATRIX_MAX_LABELS else None
    return EpochRecord(val_loss=val.loss, val_scores=dict(val.scores), val_per_class=val.per_class_json(),
                       val_confusion_matrix=matrix, **fields)


@dataclass
class Evaluator:
    """Validation during training: evaluates (at epoch ends, and every `every` optimizer steps when
    set), keeps each record and the best one's trained state in `loop`, and sets `stop` when
    `patience` evaluations in a row brought no better value of `metric`."""

    evaluate: Callable[[], Evaluation]  # one pass over validation
    loop: LoopState  # the records and the best state (what the checkpoint saves)
    trained_state: Callable[[], dict[str, torch.Tensor]]  # a copy of the trained tensors
    metric: str  # train.select_metric
    patience: int | None  # train.early_stopping_patience
    every: int | None  # train.eval_every_steps
    steps_per_epoch: int  # optimizer steps
    on_record: Callable[[list[EpochRecord]], None]  # after a mid-epoch evaluation (epoch ends: the loop's)
    seconds: float = 0.0  # spent in mid-epoch evaluations this epoch (not training time)

    @property
    def stop(self) -> bool:
        """Early stopping: the last `patience` evaluations in a row were no better (also after a resume)."""
        return self.patience is not None and bool(self.loop.metrics) and \
            self.loop.metrics[-1].evals_without_improvement >= self.patience

    def keep(self, record: EpochRecord) -> None:
        """Add an evaluation's record; the best validation value of the metric so far is the state kept."""
        best = self.loop.best
        improved = best is None or improves(record.value(self.metric), best.value(self.metric), self.metric)
        previous = self.loop.metrics[-1].evals_without_improvement if self.loop.metrics else 0
        record = dataclasses.replace(record, evals_without_improvement=0 if improved else previous + 1)
        self.loop.metrics = [*self.loop.metrics, record]
        if improved:
            self.loop.best, self.loop.best_state = record, self.trained_state()

    def after_step(self, epoch: int, step: int, train_loss: float) -> None:
        """A mid-epoch evaluation when `step` is one (the epoch's end evaluates in the loop)."""
        if self.every is None or step % self.every or step % self.steps_per_epoch == 0:
            return
        started = time.perf_counter()
        val = self.evaluate()
        self.keep(evaluation_record(val, epoch=epoch, step=step, epoch_progress=step / self.steps_per_epoch,
                                    train_loss=train_loss))
        self.seconds += time.perf_counter() - started
        self.on_record(self.loop.metrics)
