"""Stage 6, tokens -> batches: each batch padded to its own longest example, planned per epoch."""

from __future__ import annotations

import functools
import math
import random

import torch

from .tokens import Encoded


def collate(indices: list[int], encoded: Encoded, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad one batch to its longest example: tensors of shape [batch, longest] (and `labels`, [batch],
    when the examples have them)."""
    rows = encoded.rows(indices)
    longest = max(rows["length"])
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    types_ = torch.zeros((len(indices), longest), dtype=torch.long)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)
    for row, (input_ids, token_types) in enumerate(zip(rows["input_ids"], rows["token_type_ids"], strict=True)):
        n = len(input_ids)
        ids[row, :n] = torch.tensor(input_ids)
        types_[row, :n] = torch.tensor(token_types)
        mask[row, :n] = 1
    batch = {"input_ids": ids, "token_type_ids": types_, "attention_mask": mask}
    if encoded.labeled:
        batch["labels"] = encoded.objective.label_tensor(rows["label"])  # [batch] for single-label
    return batch


class BatchPlan:
    """Batches of example indices, fixed per epoch: shuffled with `seed + epoch` when training.

    A batch sampler (not a sampler) so that accelerate can shard whole batches across processes;
    `set_epoch` reshuffles, so the order depends only on the seed and the epoch. With
    `group_by_length`, each chunk of `GROUP_BATCHES` shuffled batches is sorted by length before it
    is cut into batches, and the batch order is shuffled again (as transformers'
    LengthGroupedSampler): batches hold examples of similar length, so little padding is computed.
    """

    GROUP_BATCHES = 16  # batches per sorted chunk: larger = less padding, less randomness

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool, seed: int, group_by_length: bool = False):
        self.lengths, self.batch_size, self.shuffle, self.seed = lengths, batch_size, shuffle, seed
        self.group_by_length, self.epoch = group_by_length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n, size = len(self.lengths), self.batch_size
        rng = random.Random(self.seed + self.epoch)  # noqa: S311 - a seeded, reproducible shuffle, not a secret
        order = list(range(n))
        if self.shuffle:
            rng.shuffle(order)
        if self.group_by_length:
            chunk = size * self.GROUP_BATCHES if self.shuffle else n  # evaluation: sort everything
            order = [i for s in range(0, n, chunk)
                     for i in sorted(order[s : s + chunk], key=lambda i: -self.lengths[i])]
        batches = [order[i : i + size] for i in range(0, n, size)]
        if self.group_by_length and self.shuffle:
            rng.shuffle(batches)
        return batches

    def pad_ratio(self) -> float:
        """Tokens computed (padded batches) / real tokens, for this epoch's batches."""
        padded = sum(len(b) * max(self.lengths[i] for i in b) for b in self.batches())
        return padded / sum(self.lengths)

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def make_loader(encoded: Encoded, batch_size: int, pad_id: int, shuffle: bool = False, seed: int = 0,
                group_by_length: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of dynamically padded batches planned by `BatchPlan`."""
    lengths = encoded.lengths
    return torch.utils.data.DataLoader(
        range(len(encoded)),
        batch_sampler=BatchPlan(lengths, batch_size, shuffle, seed, group_by_length),
        collate_fn=functools.partial(collate, encoded=encoded, pad_id=pad_id),
    )
