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

from ..config import MethodConfig
from ..errors import ConfigError, first_line
from ..methods.adapters import Adapter, add_layerwise_adapters, add_pfeiffer_adapters, add_top_adapter, encoder_layers


@dataclass(frozen=True)
class Mode:
    inject: Callable[[nn.Module, MethodConfig], None] | None  # surgery, or None
    # parts that train: all, adapters, layernorms, head, top_layers, peft (the PEFT layers' own
    # tensors), biases, lora_layernorms (the LayerNorms when method.lora.train_layernorms)
    trains: tuple[str, ...]
    summary: str  # one line for --help and the README
    sized_by_bottleneck: bool = False  # method.bottleneck sets its size (recorded in the summary)


def _layerwise(model: nn.Module, m: MethodConfig) -> None:
    add_layerwise_adapters(model, m.bottleneck, m.init_std, m.activation)


def _top(model: nn.Module, m: MethodConfig) -> None:
    add_top_adapter(model, m.bottleneck, m.init_std, m.activation)


def _pfeiffer(model: nn.Module, m: MethodConfig) -> None:
    add_pfeiffer_adapters(model, m.bottleneck, m.init_std, m.activation)


def peft_config(m: MethodConfig, **extra):
    """PEFT's config for a `lora` or `ia3` method (`extra`: e.g. task_type for an exported adapter)."""
    import peft  # here, not at the top: importing PEFT costs ~2 s that no other mode should pay

    if m.mode == "lora":
        return peft.LoraConfig(r=m.lora.r, lora_alpha=m.lora.alpha, lora_dropout=m.lora.dropout,
                               target_modules=list(m.lora.target_modules), **extra)
    if m.mode == "ia3":
        return peft.IA3Config(target_modules=list(m.ia3.target_modules),
                              feedforward_modules=list(m.ia3.feedforward_modules), **extra)
    raise ValueError(m.mode)


def _inject_peft(model: nn.Module, m: MethodConfig) -> None:
    """PEFT's low-level injection: its layers replace the targets inside the plain Hugging Face model
    (no PeftModel wrapper), so the predicate, saving, cache and compare treat it like any mode."""
    import peft  # lazy, as in peft_config

    try:
        peft.inject_adapter_in_model(peft_config(m), model)
    except ValueError as e:  # e.g. no module matches target_modules
        raise ConfigError(f"method.{m.mode}.target_modules: {first_line(e, 160)}") from None


MODES = {
    "full": Mode(None, ("all",), "full fine-tuning: every weight trains"),
    "layerwise": Mode(_layerwise, ("adapters", "layernorms", "head"),
                      "two Houlsby adapters per layer + all LayerNorms + head", sized_by_bottleneck=True),
    "top": Mode(_top, ("adapters", "head"), "one adapter on the last layer's output + head",
                sized_by_bottleneck=True),
    "pfeiffer": Mode(_pfeiffer, ("adapters", "head"),
                     "one adapter per layer after the feed-forward block (Pfeiffer, AdapterHub seq_bn) + head",
                     sized_by_bottleneck=True),
    "lora": Mode(_inject_peft, ("peft", "lora_layernorms", "head"), "LoRA on method.lora.target_modules (PEFT) + head"),
    "ia3": Mode(_inject_peft, ("peft", "head"), "(IA)3 scaling vectors (PEFT) + head"),
    "bitfit": Mode(None, ("biases", "head"), "every bias of the backbone + head (BitFit)"),
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
    if part == "layernorms" or (part == "lora_layernorms" and m.lora.train_layernorms):
        return [name for name, mod in model.named_modules() if isinstance(mod, nn.LayerNorm)]
    if part == "lora_layernorms":
        return []
    if part == "peft":  # the tensors each PEFT layer lists as its own (lora_A/lora_B, ia3_l), not base_layer
        from peft.tuners.tuners_utils import BaseTunerLayer  # lazy, as in peft_config

        return [f"{name}.{attr}" for name, mod in model.named_modules() if isinstance(mod, BaseTunerLayer)
                for attr in mod.adapter_layer_names if hasattr(mod, attr)]
    if part == "biases":  # BitFit: the `bias` parameter of every backbone module that has one
        return [f"{name}.bias" for name, mod in model.named_modules()
                if name.startswith(prefix + ".") and isinstance(mod._parameters.get("bias"), nn.Parameter)]
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


def modules_to_save(model: nn.Module, method: MethodConfig) -> list[str]:
    """The trained modules a PEFT adapter must save whole (PEFT's `modules_to_save`): the head (and
    pooler when it trains) and, for LoRA with train_layernorms, the LayerNorms."""
    parts = [p for p in MODES[method.mode].trains if p not in ("peft", "all")]
    names = [name for part in parts for name in _part_prefixes(model, part, method)]
    return [name for name in names if any(True for _ in model.get_submodule(name).parameters())]


def make_predicate(model: nn.Module, method: MethodConfig) -> Predicate:
    """The one predicate on parameter names that decides what trains and what is saved."""
    prefixes = [p for part in MODES[method.mode].trains for p in _part_prefixes(model, part, method)]
    names = frozenset(
        name for name, _ in model.named_parameters()
        if any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)
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
