"""Deterministic, stratified subsets: the same seed picks the same rows with the label proportions of the whole."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def stratified_take(labels: Sequence[int] | np.ndarray, n: int, seed: int) -> tuple[list[int], list[int]]:
    """Split indices 0..len(labels)-1 into (taken, rest): `n` taken with the label proportions of
    the whole (largest remainder), chosen by `seed`; both lists keep the original order.

    NumPy groups the indices by label (a million labels in milliseconds); the choice within each
    label is `random.Random(seed).sample`, as it always was, so the same seed keeps picking the same
    rows (every recorded run's subset)."""
    labels = np.asarray(labels)
    total = len(labels)
    n = min(n, total)
    values, sizes = np.unique(labels, return_counts=True)  # sorted label values
    quotas = {int(lab): n * int(size) / total for lab, size in zip(values, sizes, strict=True)}
    counts = {lab: int(q) for lab, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda lab: (-(quotas[lab] - counts[lab]), lab))
    for lab in by_remainder[: n - sum(counts.values())]:
        counts[lab] += 1
    rng = random.Random(seed)  # noqa: S311 - a seeded, reproducible subset, not a secret
    taken = np.zeros(total, dtype=bool)
    for lab in sorted(counts):
        members = np.flatnonzero(labels == lab).tolist()  # this label's indices, in order
        taken[rng.sample(members, counts[lab])] = True
    return np.flatnonzero(taken).tolist(), np.flatnonzero(~taken).tolist()
