"""What one evaluation measured: the loss and the task type's scores, computed by scikit-learn and
scipy from the labels and predictions (no hand-written metrics). Which scores a task type has is
its objective's (data/objective.py); which way each is better is here.

* single-label: accuracy, macro-F1, Matthews correlation (mcc); with two labels also the F1 of
  the positive class (label id 1, GLUE's MRPC/QQP metric); per class and the confusion matrix.
* multi-label: micro-F1, macro-F1, subset accuracy (every label of an example right); per label.
* regression: Pearson and Spearman correlation, mean squared error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

LOWER_IS_BETTER = ("loss", "mse")
PERCENT = ("accuracy", "macro_f1", "f1", "micro_f1", "subset_accuracy")  # fractions, shown in %
METRIC_TEXT = {  # in messages, column headers and axis labels
    "accuracy": "accuracy", "macro_f1": "macro-F1", "loss": "loss", "mcc": "Matthews corr.",
    "f1": "F1", "micro_f1": "micro-F1", "subset_accuracy": "subset accuracy",
    "pearson": "Pearson r", "spearman": "Spearman rho", "mse": "MSE",
}


@dataclass(frozen=True)
class ClassMetrics:
    """One label's scores (0 where undefined, e.g. precision of a class never predicted)."""

    precision: float
    recall: float
    f1: float
    support: int  # examples whose true label is (or, multi-label, includes) this one


@dataclass(frozen=True)
class Evaluation:
    """One pass over a split."""

    loss: float  # mean loss per example (the objective's)
    scores: dict[str, float | None] = field(default_factory=dict)  # metric -> value; None: undefined
    per_class: tuple[ClassMetrics, ...] = ()  # classification: one per label, in label order
    confusion_matrix: list[list[int]] | None = None  # single-label: [true label][predicted label] -> count

    def value(self, metric: str) -> float | None:
        """The value of a metric (`train.select_metric`, compare's columns); None when undefined."""
        return self.loss if metric == "loss" else self.scores[metric]

    @property
    def accuracy(self) -> float | None:
        return self.scores.get("accuracy")

    @property
    def macro_f1(self) -> float | None:
        return self.scores.get("macro_f1")

    def per_class_json(self) -> list[dict[str, Any]] | None:
        """The per-class scores as written to metrics.jsonl and summary.json (None: not a classifier)."""
        return [dataclasses.asdict(c) for c in self.per_class] if self.per_class else None


def finite(value: Any) -> float | None:
    """A score as a JSON-safe float: None where it is undefined (e.g. a correlation of constants)."""
    value = float(value)
    return value if math.isfinite(value) else None


def per_class_of(labels: Any, predictions: Any, classes: list[int] | None) -> tuple[ClassMetrics, ...]:
    from sklearn.metrics import precision_recall_fscore_support  # lazy: see evaluation_from

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, average=None, zero_division=0)
    return tuple(ClassMetrics(float(p), float(r), float(f), int(s))
                 for p, r, f, s in zip(precision, recall, f1, support, strict=True))


def evaluation_from(labels: list[int], predictions: list[int], num_labels: int, loss: float) -> Evaluation:
    """Single-label scores over all `num_labels` classes (absent ones included, so the matrix and the
    per-class list always have the data set's shape)."""
    # imported here, not at the top: compare and `ftcli --help` need the metric names, not scikit-learn (~1 s)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, matthews_corrcoef

    classes = list(range(num_labels))
    scores = {"accuracy": float(accuracy_score(labels, predictions)),
              "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
              "mcc": finite(matthews_corrcoef(labels, predictions)) if labels else None}
    if num_labels == 2:  # GLUE's F1: of the positive class, label id 1
        scores["f1"] = float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))
    matrix = confusion_matrix(labels, predictions, labels=classes)
    return Evaluation(loss=loss, scores=scores, per_class=per_class_of(labels, predictions, classes),
                      confusion_matrix=[[int(n) for n in row] for row in matrix])


def multilabel_evaluation(labels: list[list[int]], predictions: list[list[int]], loss: float) -> Evaluation:
    """Multi-label scores of 0/1 indicator rows [examples][labels]."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    y, p = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    scores = {"micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
              "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
              "subset_accuracy": float(accuracy_score(y, p))}
    return Evaluation(loss=loss, scores=scores, per_class=per_class_of(y, p, None))


def regression_evaluation(labels: list[float], predictions: list[float], loss: float) -> Evaluation:
    """Regression scores: Pearson and Spearman correlation (undefined, None, when either side is
    constant) and the mean squared error, in the labels' own units."""
    import warnings

    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    with warnings.catch_warnings():  # a constant input: scipy warns and returns NaN, recorded as None
        warnings.simplefilter("ignore")
        pearson = finite(pearsonr(labels, predictions)[0]) if len(labels) > 1 else None
        spearman = finite(spearmanr(labels, predictions)[0]) if len(labels) > 1 else None
    return Evaluation(loss=loss, scores={"pearson": pearson, "spearman": spearman,
                                         "mse": float(mean_squared_error(labels, predictions))})


def value_text(value: float | None) -> str:
    """A score for log lines: `0.8920`, or `-` where undefined."""
    return "-" if value is None else f"{value:.4f}"


def score_text(metric: str, value: float | None) -> str:
    """`accuracy 0.8920`, or `Pearson r -` where undefined (for log lines)."""
    return f"{METRIC_TEXT[metric]} {value_text(value)}"


def improves(value: float | None, best: float | None, metric: str) -> bool:
    """Whether `value` is strictly better than `best` (a tie keeps the earlier evaluation; an
    undefined value never improves, and anything defined improves on an undefined best)."""
    if value is None:
        return False
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best
