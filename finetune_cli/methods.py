"""Tuning modes: each is a surgery (which adapters to insert) plus which parts train.

One predicate, built from module types, decides what trains; `trained_state_dict` uses the very
same predicate to decide what is saved (as litgpt's `adapter_filter` / PEFT's
`get_peft_model_state_dict`). The training loop never looks at the mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .adapters import Adapter, add_layerwise_adapters, add_top_adapter, encoder_layers
from .config import MethodConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Mode:
    inject: Callable[[nn.Module, MethodConfig], None] | None  # surgery, or None
    trains: tuple[str, ...]  # parts that train: all, adapters, layernorms, head, top_layers
    summary: str  # one line for --help and the README


def _layerwise(model: nn.Module, m: MethodConfig) -> None:
    add_layerwise_adapters(model, m.bottleneck, m.init_std, m.activation)


def _top(model: nn.Module, m: MethodConfig) -> None:
    add_top_adapter(model, m.bottleneck, m.init_std, m.activation)


MODES = {
    "full": Mode(None, ("all",), "full fine-tuning: every weight trains"),
    "layerwise": Mode(_layerwise, ("adapters", "layernorms", "head"),
                      "two Houlsby adapters per layer + all LayerNorms + head"),
    "top": Mode(_top, ("adapters", "head"), "one adapter on the last layer's output + head"),
    "top_layers": Mode(None, ("top_layers", "head"), "top k encoder layers + head (variable fine-tuning)"),
    "layernorm": Mode(None, ("layernorms", "head"), "LayerNorms + head only"),
    "head": Mode(None, ("head",), "classification head only (linear probe)"),
}


Predicate = Callable[[str], bool]


def _backbone_prefix(model: nn.Module) -> str:
    return model.base_model_prefix


def _part_prefixes(model: nn.Module, part: str, m: MethodConfig) -> list[str]:
    """Module-name prefixes of one trainable part, found by module type or position."""
    prefix = _backbone_prefix(model)
    if part == "all":
        return [""]
    if part == "adapters":
        return [name for name, mod in model.named_modules() if isinstance(mod, Adapter)]
    if part == "layernorms":
        return [name for name, mod in model.named_modules() if isinstance(mod, nn.LayerNorm)]
    if part == "head":  # everything outside the backbone, plus the pooler when asked for
        heads = [name for name, _ in model.named_children() if name != prefix]
        pooler = getattr(getattr(model, prefix), "pooler", None)
        return heads + ([f"{prefix}.pooler"] if m.train_pooler and pooler is not None else [])
    if part == "top_layers":
        n_layers = len(encoder_layers(model))
        if m.top_layers > n_layers:
            raise ConfigError(f"method.top_layers: {m.top_layers} is more than the model's {n_layers} layers")
        return [f"{prefix}.encoder.layer.{i}" for i in range(n_layers - m.top_layers, n_layers)]
    raise ValueError(part)


def make_predicate(model: nn.Module, method: MethodConfig) -> Predicate:
    """The one predicate on parameter names that decides what trains and what is saved."""
    prefixes = [p for part in MODES[method.mode].trains for p in _part_prefixes(model, part, method)]
    names = frozenset(
        name for name, _ in model.named_parameters()
        if any(p == "" or name.startswith(p + ".") for p in prefixes)
    )
    return names.__contains__


def apply_method(model: nn.Module, method: MethodConfig) -> Predicate:
    """Insert the mode's adapters, freeze everything the predicate rejects, return the predicate."""
    mode = MODES[method.mode]
    if mode.inject is not None:
        mode.inject(model, method)
    is_trained = make_predicate(model, method)
    for name, param in model.named_parameters():
        param.requires_grad_(is_trained(name))
    return is_trained


def trained_state_dict(model: nn.Module, is_trained: Predicate) -> dict[str, torch.Tensor]:
    """The trained parameters only, detached copies on the CPU (what a run saves)."""
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if is_trained(n)}


@dataclass(frozen=True)
class ParamCounts:
    trainable: int  # parameters the optimizer updates
    total: int  # all parameters of the model, adapters included
    backbone: int  # the pretrained encoder before any adapter (pooler included)

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable / self.total

    def line(self) -> str:
        """The familiar PEFT `print_trainable_parameters` form."""
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} "
                f"|| trainable%: {self.trainable_pct:.4f}")


def count_params(model: nn.Module, is_trained: Predicate, backbone: int) -> ParamCounts:
    trainable = sum(p.numel() for n, p in model.named_parameters() if is_trained(n))
    total = sum(p.numel() for p in model.parameters())
    return ParamCounts(trainable, total, backbone)
