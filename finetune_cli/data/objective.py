"""The objective of a task: what its labels are as tensors, the loss, the predictions, and how a split
is scored. The loop, evaluation, predict, export and compare (which metrics a run's `task_type` has)
ask the task's objective and never branch on the kind of task, so a new task type (multi-label,
regression) is one more Objective here plus tests. Single-label classification is the one
implemented today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .metrics import Evaluation, evaluation_from


@dataclass(frozen=True)
class Objective:
    """One kind of task. Subclasses fill in every method; tensors come in as torch tensors."""

    name: str  # recorded in summary.json as `task_type`
    problem_type: str  # transformers' `config.problem_type` of the exported model
    select_metrics: tuple[str, ...]  # what train.select_metric may name
    compare_metrics: tuple[str, ...]  # what `ftcli compare --metric` may show (recorded on validation and test)

    def label_feature(self) -> Any:
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


@dataclass(frozen=True)
class SingleLabel(Objective):
    """One label per example among num_labels: cross-entropy on the logits, argmax predictions,
    accuracy / macro-F1 / per class / confusion matrix, softmax probabilities."""

    name: str = "single_label"
    problem_type: str = "single_label_classification"
    select_metrics: tuple[str, ...] = ("accuracy", "macro_f1", "loss")
    compare_metrics: tuple[str, ...] = ("accuracy", "macro_f1")

    def label_feature(self) -> Any:
        import datasets  # lazy: ~0.6 s to import, and compare imports this module

        return datasets.Value("int64")

    def label_tensor(self, values: list[Any]) -> Any:
        import torch  # lazy, as above

        return torch.tensor(values, dtype=torch.long)  # [batch] label ids

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        import torch

        # float(): the same loss as the Hugging Face head computes (cross-entropy autocasts to fp32)
        return torch.nn.functional.cross_entropy(logits.float(), labels, reduction=reduction)

    def predictions(self, logits: Any) -> list[int]:
        return logits.argmax(-1).tolist()  # [batch, num_labels] -> [batch]

    def score(self, labels: list[int], predictions: list[int], num_labels: int, loss: float) -> Evaluation:
        return evaluation_from(labels, predictions, num_labels, loss)

    def describe(self, logits: Any, label_names: list[str]) -> dict[str, Any]:
        import torch

        probs = logits.float().softmax(-1)  # [num_labels]
        if not torch.isfinite(probs).all():
            return {"label": None, "label_id": None, "probabilities": dict.fromkeys(label_names)}
        i = int(probs.argmax())
        return {"label": label_names[i], "label_id": i,
                "probabilities": {n: round(float(v), 6) for n, v in zip(label_names, probs, strict=True)}}


SINGLE_LABEL = SingleLabel()
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (SINGLE_LABEL,)}
