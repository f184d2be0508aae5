"""The objective of a task type: what its labels are (checked values and tensors), the loss, the
predictions, how a split is scored, and what `ftcli predict` prints. The loop, evaluation, the
checks, predict, export and compare ask the task's objective and never branch on the kind of task:
a new task type is one more Objective here plus tests.

* single_label: one label id per example; cross-entropy; argmax; softmax probabilities.
* multi_label: a 0/1 indicator per label; BCE-with-logits; sigmoid >= threshold per label.
* regression: one number per example (one output); mean squared error; the output itself.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from ..errors import DataError, short_repr
from .metrics import Evaluation, evaluation_from, multilabel_evaluation, regression_evaluation


@dataclass(frozen=True)
class Objective:
    """One kind of task. Subclasses fill in every method; tensors come in as torch tensors; `task`
    is the data/task.py Task (typed Any here: task.py builds on this module)."""

    name: str  # recorded in summary.json as `task_type`
    problem_type: str  # transformers' `config.problem_type` of the exported model
    select_metrics: tuple[str, ...]  # what train.select_metric may name; the first is `auto`'s
    compare_metrics: tuple[str, ...]  # what `ftcli compare --metric` may show (recorded on validation and test)
    # one class per example: class balance applies (data/balance.py: select_metric auto, class
    # weights, the collapse warning)
    has_classes: bool = False

    @property
    def default_metric(self) -> str:
        return self.select_metrics[0]

    def outputs(self, num_labels: int) -> int:
        """The classifier's output size."""
        return num_labels

    def encode_label(self, value: Any, task: Any, at: str) -> Any:
        """A raw label value as the checked rows keep it, or a DataError naming the row (`at`)."""
        raise NotImplementedError

    def label_feature(self, num_labels: int) -> Any:
        """The `datasets` feature of the checked label column."""
        raise NotImplementedError

    def label_tensor(self, values: list[Any]) -> Any:
        """A batch's labels as the loss wants them: [batch, ...]."""
        raise NotImplementedError

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        """The training loss of logits [batch, outputs] against labels (`reduction` as torch's)."""
        raise NotImplementedError

    def predictions(self, logits: Any) -> list[Any]:
        """What the model predicts per example, comparable with the label values."""
        raise NotImplementedError

    def score(self, labels: list[Any], predictions: list[Any], num_labels: int, loss: float) -> Evaluation:
        """One split's evaluation from every example's label and prediction."""
        raise NotImplementedError

    def describe(self, logits: Any, label_names: list[str]) -> dict[str, Any]:
        """`ftcli predict`'s output for one input (logits [outputs]); null values where not finite."""
        raise NotImplementedError


def torch_module():
    import torch  # lazy: compare and `ftcli --help` import this module, torch takes seconds

    return torch


def datasets_module():
    import datasets  # lazy: ~0.6 s to import

    return datasets


def normalize_label(value: Any) -> Any:
    """A label as the lookup sees it: a whole float (CSV/pandas reads 1 as 1.0) is the integer."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value



def names_text(spec: Any) -> str:
    """The label names for a message: all of them, or the first ten of many."""
    shown = ", ".join(spec.label_names[:10])
    return shown + (f", … ({spec.num_labels} in all)" if spec.num_labels > 10 else "")


@functools.lru_cache(maxsize=64)
def label_lookup(spec: Any) -> dict[Any, int]:
    """Label value -> id of a task whose labels are names (bools excluded by the caller: True == 1)."""
    return {v: i for i, v in enumerate(spec.label_values)}


def label_id(label: Any, spec: Any, at: str) -> int:
    """The id of one label value, or a DataError naming the row (`at`)."""
    label = normalize_label(label)
    n = spec.num_labels
    ok_id = isinstance(label, int) and not isinstance(label, bool) and 0 <= label < n
    if spec.ids_only:  # the presets: labels are ids, as in their Hub copies
        if ok_id:
            return label
        hint = ""
        if isinstance(label, str) and label in spec.label_names:
            hint = f"; labels are ids: write {spec.label_names.index(label)} for {label!r}"
        raise DataError(f"{at}: label {short_repr(label)} is not in 0..{n - 1} ({names_text(spec)}){hint}")
    if label is None:
        raise DataError(f"{at}: no label (the {spec.label_field!r} column is empty here)")
    if not isinstance(label, bool):
        try:
            return label_lookup(spec)[label]
        except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
            pass
    if spec.labels_inferred:
        raise DataError(f"{at}: label {short_repr(label)} does not occur in train (labels: {names_text(spec)})")
    if ok_id:  # with label_names given, a label may also be its id
        return label
    raise DataError(f"{at}: label {short_repr(label)} is not one of data.label_names ({names_text(spec)}) "
                    f"nor an id 0..{n - 1}")


@dataclass(frozen=True)
class SingleLabel(Objective):
    """One label per example among num_labels: cross-entropy on the logits, argmax predictions,
    accuracy / macro-F1 / MCC (/ F1 of label 1) / per class / confusion matrix, softmax probabilities."""

    name: str = "single_label"
    problem_type: str = "single_label_classification"
    select_metrics: tuple[str, ...] = ("accuracy", "macro_f1", "mcc", "f1", "loss")
    compare_metrics: tuple[str, ...] = ("accuracy", "macro_f1", "mcc", "f1")
    has_classes: bool = True
    class_weights: tuple[float, ...] | None = None  # train.class_weights: balanced, per label id (training loss)

    def encode_label(self, value: Any, task: Any, at: str) -> int:
        return label_id(value, task, at)

    def label_feature(self, num_labels: int) -> Any:
        return datasets_module().Value("int64")

    def label_tensor(self, values: list[Any]) -> Any:
        torch = torch_module()
        return torch.tensor(values, dtype=torch.long)  # [batch] label ids

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        # float(): the same loss as the Hugging Face head computes (cross-entropy autocasts to fp32)
        torch = torch_module()
        # the weights shape the training step (reduction "mean"); an evaluation's summed loss stays the
        # plain cross-entropy, comparable with unweighted runs and on the scale of its accuracy
        weighted = self.class_weights is not None and reduction == "mean"
        weight = torch.tensor(self.class_weights, device=logits.device) if weighted else None
        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight, reduction=reduction)

    def predictions(self, logits: Any) -> list[int]:
        return logits.argmax(-1).tolist()  # [batch, num_labels] -> [batch]

    def score(self, labels: list[int], predictions: list[int], num_labels: int, loss: float) -> Evaluation:
        return evaluation_from(labels, predictions, num_labels, loss)

    def describe(self, logits: Any, label_names: list[str]) -> dict[str, Any]:
        probs = logits.float().softmax(-1)  # [num_labels]
        if not torch_module().isfinite(probs).all():
            return {"label": None, "label_id": None, "probabilities": dict.fromkeys(label_names)}
        i = int(probs.argmax())
        return {"label": label_names[i], "label_id": i,
                "probabilities": {n: round(float(v), 6) for n, v in zip(label_names, probs, strict=True)}}


@dataclass(frozen=True)
class MultiLabel(Objective):
    """Any number of labels per example (none included): a 0/1 indicator per label, BCE-with-logits
    (transformers' `multi_label_classification` loss), a label predicted when its sigmoid reaches
    `threshold`; micro-F1, macro-F1, subset accuracy, per label."""

    name: str = "multi_label"
    problem_type: str = "multi_label_classification"
    select_metrics: tuple[str, ...] = ("micro_f1", "macro_f1", "subset_accuracy", "loss")
    compare_metrics: tuple[str, ...] = ("micro_f1", "macro_f1", "subset_accuracy")
    threshold: float = 0.5  # train.threshold

    def encode_label(self, value: Any, task: Any, at: str) -> list[float]:
        """A list of label names (or ids, or text split by data.label_separator) as indicators."""
        if isinstance(value, str) and task.label_separator is not None:
            value = [part.strip() for part in value.split(task.label_separator) if part.strip()]
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{at}: label {short_repr(value)} is not a list of labels (multi-label; for text "
                            "such as `a;b` set data.label_separator)")
        row = [0.0] * task.num_labels
        for one in value:
            row[label_id(one, task, at)] = 1.0
        return row

    def label_feature(self, num_labels: int) -> Any:
        ds = datasets_module()
        return ds.Sequence(ds.Value("float32"), length=num_labels)

    def label_tensor(self, values: list[Any]) -> Any:
        torch = torch_module()
        return torch.tensor(values, dtype=torch.float32)  # [batch, num_labels] of 0/1

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        nn = torch_module().nn
        per_example = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none").mean(-1)
        return per_example.sum() if reduction == "sum" else per_example.mean()

    def predictions(self, logits: Any) -> list[list[int]]:
        return (logits.float().sigmoid() >= self.threshold).long().tolist()  # [batch, num_labels] of 0/1

    def score(self, labels: list[Any], predictions: list[Any], num_labels: int, loss: float) -> Evaluation:
        return multilabel_evaluation([[int(v) for v in row] for row in labels], predictions, loss)

    def describe(self, logits: Any, label_names: list[str]) -> dict[str, Any]:
        probs = logits.float().sigmoid()  # [num_labels]
        if not torch_module().isfinite(probs).all():
            return {"labels": None, "scores": dict.fromkeys(label_names)}
        return {"labels": [n for n, p in zip(label_names, probs, strict=True) if p >= self.threshold],
                "scores": {n: round(float(v), 6) for n, v in zip(label_names, probs, strict=True)}}


@dataclass(frozen=True)
class Regression(Objective):
    """One number per example: one output, mean squared error (transformers' `regression` loss), the
    output as the prediction (in the labels' units: they are not normalised); Pearson, Spearman, MSE."""

    name: str = "regression"
    problem_type: str = "regression"
    select_metrics: tuple[str, ...] = ("pearson", "spearman", "mse", "loss")
    compare_metrics: tuple[str, ...] = ("pearson", "spearman", "mse")

    def outputs(self, num_labels: int) -> int:
        return 1

    def encode_label(self, value: Any, task: Any, at: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{at}: label {short_repr(value)} is not a number (regression; column "
                            f"{task.label_field!r})")
        if not math.isfinite(value):
            raise DataError(f"{at}: label {short_repr(value)} is not a finite number (regression)")
        return float(value)

    def label_feature(self, num_labels: int) -> Any:
        return datasets_module().Value("float32")

    def label_tensor(self, values: list[Any]) -> Any:
        torch = torch_module()
        return torch.tensor(values, dtype=torch.float32)  # [batch]

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        return torch_module().nn.functional.mse_loss(logits.float().squeeze(-1), labels, reduction=reduction)

    def predictions(self, logits: Any) -> list[float]:
        return logits.float().squeeze(-1).tolist()  # [batch, 1] -> [batch]

    def score(self, labels: list[Any], predictions: list[Any], num_labels: int, loss: float) -> Evaluation:
        return regression_evaluation(labels, predictions, loss)

    def describe(self, logits: Any, label_names: list[str]) -> dict[str, Any]:
        value = float(logits.float().reshape(-1)[0])
        return {"value": round(value, 6) if math.isfinite(value) else None}


SINGLE_LABEL, MULTI_LABEL, REGRESSION = SingleLabel(), MultiLabel(), Regression()
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (SINGLE_LABEL, MULTI_LABEL, REGRESSION)}


def objective_for(task_type: str, threshold: float = 0.5) -> Objective:
    """The objective of a task type (`train.threshold` for multi-label)."""
    objective = OBJECTIVES[task_type]
    return MultiLabel(threshold=threshold) if isinstance(objective, MultiLabel) else objective
