"""Class balance of a single-label task: whether the training labels are imbalanced (what
`train.select_metric: auto` and `train.class_weights` look at), and whether a kept model has
collapsed onto one class (the warning a run records). Pure functions of label counts and a
confusion matrix, so they are tested without a model."""

from __future__ import annotations

from collections.abc import Sequence

# A kept model "predicts one class" when that class gets at least this share of validation
COLLAPSE_SHARE = 0.95
# ... or its macro-F1 is this far (a fraction, 0.25 = 25 points) below its accuracy: the rare
# classes are mostly missed while the frequent one carries the accuracy
COLLAPSE_GAP = 0.25
ADVICE = ("try a higher train.learning_rate, more train.epochs, train.select_metric: macro_f1 or "
          "train.class_weights: balanced")


def imbalance_share(num_labels: int) -> float:
    """The majority share from which a task is imbalanced: twice the uniform share (2/K), but at most
    2/3 so that two labels (where 2/K is 1) and three can be imbalanced too (2:1 and beyond)."""
    return min(2 / num_labels, 2 / 3)


def is_imbalanced(counts: Sequence[int]) -> bool:
    """Whether the training label counts (one per label id) are imbalanced."""
    total = sum(counts)
    return total > 0 and max(counts) / total >= imbalance_share(len(counts))


def balanced_weights(counts: Sequence[int]) -> tuple[float, ...]:
    """scikit-learn's `class_weight="balanced"`: n / (K * count) per class; a class absent from train
    (label names given) gets weight 0, since no example of it can be weighted. Its formula, written
    here because its compute_class_weight refuses a class absent from y and wants every label value."""
    total, k = sum(counts), sum(1 for c in counts if c)  # K: the classes train has
    return tuple(total / (k * c) if c else 0.0 for c in counts)


def collapse_warning(confusion: list[list[int]] | None, accuracy: float | None, macro_f1: float | None,
                     label_names: Sequence[str]) -> str | None:
    """One line when the kept model looks collapsed on validation (confusion [true][predicted]):
    it predicts one class for >= 95% of examples that are not 95% that class, or its macro-F1 is far
    below its accuracy; None otherwise, or when there is nothing to judge (no matrix)."""
    if not confusion or sum(map(sum, confusion)) == 0:
        return None
    total = sum(map(sum, confusion))
    predicted = [sum(row[j] for row in confusion) for j in range(len(confusion))]  # column sums
    top = max(range(len(predicted)), key=predicted.__getitem__)
    share, true_share = predicted[top] / total, sum(confusion[top]) / total
    scores = f"macro-F1 {macro_f1:.2f}, accuracy {accuracy:.2f}" if None not in (macro_f1, accuracy) else ""
    # macro-F1 averages over every label: one absent from validation scores 0 there, a gap that says
    # nothing about the model, so the gap test needs every class in validation
    every_class = all(sum(row) for row in confusion)
    if share >= COLLAPSE_SHARE and true_share < COLLAPSE_SHARE:
        what = f"predicts {label_names[top]!r} for {share:.0%} of validation ({true_share:.0%} are)"
    elif scores and every_class and accuracy - macro_f1 >= COLLAPSE_GAP:
        what = "misses the rare classes"
    else:
        return None
    return f"the kept model {what}" + (f"; {scores}" if scores else "") + f": {ADVICE}"
