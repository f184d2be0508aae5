"""What trains: one predicate on parameter names, built from a method's `trains` parts.

One predicate, built from module types, decides what trains; `trained_state_dict` uses the very
same predicate to decide what is saved (as litgpt's `adapter_filter` / PEFT's
`get_peft_model_state_dict`). The training loop never looks at the method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..config import MethodConfig
from ..errors import ConfigError
from .adapters import Adapter, encoder_layers, layout_of
from .registry import METHODS
from .surgery import SURGERIES

Predicate = Callable[[str], bool]


def _peft_tensors(model: nn.Module) -> list[str]:
    """The tensors each PEFT layer lists as its own (lora_A/lora_B, DoRA's lora_magnitude_vector,
    ia3_l), never its frozen base_layer."""
    from peft.tuners.tuners_utils import BaseTunerLayer  # lazy: importing PEFT costs ~2 s (peft_methods.py)

    return [f"{name}.{attr}" for name, mod in model.named_modules() if isinstance(mod, BaseTunerLayer)
            for attr in mod.adapter_layer_names if hasattr(mod, attr)]


def _biases(model: nn.Module, prefix: str) -> list[str]:
    """BitFit: the `bias` parameter of every backbone module that has one."""
    found = [f"{name}.bias" for name, mod in model.named_modules()
             if name.startswith(prefix + ".") and isinstance(mod._parameters.get("bias"), nn.Parameter)]
    if not found:  # e.g. ModernBERT (no biases by default): bitfit would silently be `head`
        raise ConfigError(f"method.mode: bitfit trains the backbone's biases, and this {model.config.model_type} "
                          "model has none; pick another method (head trains the head alone)")
    return found


def _head(model: nn.Module, prefix: str, m: MethodConfig) -> list[str]:
    """Everything outside the backbone, plus the pooler when asked for."""
    heads = [name for name, _ in model.named_children() if name != prefix]
    pooler = getattr(getattr(model, prefix), "pooler", None)
    return heads + ([f"{prefix}.pooler"] if m.train_pooler and pooler is not None else [])


def _top_layers(model: nn.Module, m: MethodConfig, layout: str) -> list[str]:
    """The top k distinct layers (ALBERT: of its shared layers, which serve every depth)."""
    layers = [name for name, _ in encoder_layers(model, layout_of(model, layout, "top_layers"))]
    if m.top_layers > len(layers):
        raise ConfigError(f"method.top_layers: {m.top_layers} is more than the model's {len(layers)} distinct layers")
    return layers[len(layers) - m.top_layers:]


def part_prefixes(model: nn.Module, part: str, m: MethodConfig, layout: str = "auto") -> list[str]:
    """Module-name prefixes of one trainable part (registry.PARTS), found by module type or position
    (`layout`: model.layout, for the parts that need the architecture table)."""
    prefix = model.base_model_prefix
    if part == "all":
        return [""]
    if part == "adapters":
        return [name for name, mod in model.named_modules() if isinstance(mod, Adapter)]
    if part == "layernorms" or (part == "lora_layernorms" and m.lora.train_layernorms):
        return [name for name, mod in model.named_modules() if isinstance(mod, nn.LayerNorm)]
    if part == "lora_layernorms":
        return []
    if part == "peft":
        return _peft_tensors(model)
    if part == "biases":
        return _biases(model, prefix)
    if part == "head":
        return _head(model, prefix, m)
    if part == "top_layers":
        return _top_layers(model, m, layout)
    raise ValueError(part)


def modules_to_save(model: nn.Module, method: MethodConfig, layout: str = "auto") -> list[str]:
    """The trained modules a PEFT adapter must save whole (PEFT's `modules_to_save`): the head (and
    pooler when it trains) and, for LoRA with train_layernorms, the LayerNorms."""
    parts = [p for p in METHODS[method.mode].trains if p not in ("peft", "all")]
    names = [name for part in parts for name in part_prefixes(model, part, method, layout)]
    return [name for name in names if any(True for _ in model.get_submodule(name).parameters())]


def make_predicate(model: nn.Module, method: MethodConfig, layout: str = "auto") -> Predicate:
    """The one predicate on parameter names that decides what trains and what is saved."""
    prefixes = [p for part in METHODS[method.mode].trains for p in part_prefixes(model, part, method, layout)]
    names = frozenset(
        name for name, _ in model.named_parameters()
        if any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)
    )
    return names.__contains__


def apply_method(model: nn.Module, method: MethodConfig, layout: str = "auto") -> Predicate:
    """Run the method's surgery, freeze everything the predicate rejects, return the predicate
    (`layout`: model.layout, which architecture-table entry places the method's modules)."""
    surgery = METHODS[method.mode].surgery
    if surgery is not None:
        SURGERIES[surgery](model, method, layout)
    is_trained = make_predicate(model, method, layout)
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
