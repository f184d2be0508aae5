"""AdamW over exactly the trained parameters, and the linear warm-up / decay schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig


def make_optimizer(model: nn.Module, is_trained, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over exactly the trained parameters (`is_trained`: the method's predicate); no weight
    decay on biases and LayerNorms."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if is_trained(name):
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel over all tensors instead of a Python loop per tensor (~10% of a full step on CPU)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate, fused=True)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up over `warmup_ratio` of the steps, then linear decay to zero."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trained_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]
