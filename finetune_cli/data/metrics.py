"""What one evaluation measured: loss, accuracy, macro-F1, per-class precision/recall/F1 and the
confusion matrix, computed by scikit-learn from the labels and predictions (no hand-written metrics).

Also which way each selection metric is better (`train.select_metric`, `ftcli compare --metric`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import SelectMetric

LOWER_IS_BETTER = ("loss",)
METRIC_TEXT = {"accuracy": "accuracy", "macro_f1": "macro-F1", "loss": "loss"}  # in messages and axis labels


@dataclass(frozen=True)
class ClassMetrics:
    """One label's scores (0 where undefined, e.g. precision of a class never predicted)."""

    precision: float
    recall: float
    f1: float
    support: int  # examples whose true label is this one


@dataclass(frozen=True)
class Evaluation:
    """One pass over a split; labels are indices 0..num_labels-1 (the data set's label_names order)."""

    loss: float  # mean cross-entropy per example
    accuracy: float
    macro_f1: float  # unweighted mean of the per-class F1 (every label counts, even one never predicted)
    per_class: tuple[ClassMetrics, ...]  # one per label, in label order
    confusion_matrix: list[list[int]]  # [true label][predicted label] -> count

    def value(self, metric: SelectMetric) -> float:
        """The value of a selection metric (`train.select_metric`)."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "loss": self.loss}[metric]

    def per_class_json(self) -> list[dict[str, Any]]:
        """The per-class scores as written to metrics.jsonl and summary.json."""
        return [dataclasses.asdict(c) for c in self.per_class]


def evaluation_from(labels: list[int], predictions: list[int], num_labels: int, loss: float) -> Evaluation:
    """Score predictions against labels over all `num_labels` classes (absent ones included, so the
    matrix and the per-class list always have the data set's shape)."""
    # imported here, not at the top: compare and `ftcli --help` need the metric names, not scikit-learn (~1 s)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    classes = list(range(num_labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, average=None, zero_division=0)
    per_class = tuple(ClassMetrics(float(p), float(r), float(f), int(s))
                      for p, r, f, s in zip(precision, recall, f1, support, strict=True))
    matrix = confusion_matrix(labels, predictions, labels=classes)
    return Evaluation(
        loss=loss, accuracy=float(accuracy_score(labels, predictions)),
        macro_f1=float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        per_class=per_class, confusion_matrix=[[int(n) for n in row] for row in matrix])


def improves(value: float, best: float, metric: SelectMetric) -> bool:
    """Whether `value` is strictly better than `best` (a tie keeps the earlier evaluation)."""
    return value < best if metric in LOWER_IS_BETTER else value > best
