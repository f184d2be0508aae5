"""Deterministic, stratified subsets: the same seed picks the same rows with the label proportions of the whole."""

from __future__ import annotations

import random

from .tasks import Rows


def stratified_take(labels: list[int], n: int, seed: int) -> tuple[list[int], list[int]]:
    """Split indices 0..len(labels)-1 into (taken, rest): `n` taken with the label proportions of
    the whole (largest remainder), chosen by `seed`; both lists keep the original order."""
    n = min(n, len(labels))
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    quotas = {lab: n * len(idx) / len(labels) for lab, idx in by_label.items()}
    counts = {lab: int(q) for lab, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda lab: (-(quotas[lab] - counts[lab]), lab))
    for lab in by_remainder[: n - sum(counts.values())]:
        counts[lab] += 1
    rng = random.Random(seed)  # noqa: S311 - a seeded, reproducible subset, not a secret
    taken: set[int] = set()
    for lab in sorted(by_label):
        taken.update(rng.sample(by_label[lab], counts[lab]))
    return sorted(taken), [i for i in range(len(labels)) if i not in taken]


def take_subset(rows: Rows, n: int | None, seed: int) -> Rows:
    """A stratified, seeded subset of at most `n` rows (all rows when `n` is None)."""
    if n is None or n >= len(rows):
        return rows
    taken, _ = stratified_take([r["label"] for r in rows], n, seed)
    return [rows[i] for i in taken]


def carve_validation(train: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """(train, validation): a seeded, stratified `fraction` of train held out as validation."""
    n_val = max(1, round(len(train) * fraction))
    val_idx, train_idx = stratified_take([r["label"] for r in train], n_val, seed)
    return [train[i] for i in train_idx], [train[i] for i in val_idx]
