"""The methods PEFT implements (lora, with DoRA as its `use_dora`; ia3): their PEFT config and the
injection of PEFT's layers into the plain Hugging Face model.

PEFT is imported inside the functions, not at the top: importing it costs ~2 s that no other method
(and no `ftcli --help`) should pay.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ..config import MethodConfig
from ..errors import ConfigError, first_line
from ..models.families import AUTO_KEYS, family_of
from .registry import METHODS


def with_targets(m: MethodConfig, model: nn.Module, layout: str = "auto") -> MethodConfig:
    """`m` with the `auto` values of its method's section (lora / ia3 targets) resolved to the model
    family's defaults (Family.auto_targets); explicit lists are kept as given."""
    section = METHODS[m.mode].section
    settings = getattr(m, section) if section else None
    autos = [key for s, key in AUTO_KEYS if s == section and getattr(settings, key) == "auto"]
    if not autos:
        return m
    family = family_of(model.config.model_type, layout, f"method.{section}.{autos[0]}: auto needs its default targets")
    resolved = {key: family.auto_targets()[(section, key)] for key in autos}
    return dataclasses.replace(m, **{section: dataclasses.replace(settings, **resolved)})


def targets_of(m: MethodConfig) -> list[str] | None:
    """The (resolved) PEFT target modules of a lora or ia3 method; None for the others."""
    return list(m.lora.target_modules) if m.mode == "lora" else list(m.ia3.target_modules) if m.mode == "ia3" else None


def peft_config(m: MethodConfig, model: nn.Module, layout: str = "auto", **extra):
    """PEFT's config for a `lora` or `ia3` method on `model` (`extra`: e.g. task_type for an export)."""
    import peft

    m = with_targets(m, model, layout)
    if m.mode == "lora":
        return peft.LoraConfig(r=m.lora.r, lora_alpha=m.lora.alpha, lora_dropout=m.lora.dropout,
                               target_modules=list(m.lora.target_modules), use_dora=m.lora.use_dora, **extra)
    if m.mode == "ia3":
        return peft.IA3Config(target_modules=list(m.ia3.target_modules),
                              feedforward_modules=list(m.ia3.feedforward_modules), **extra)
    raise ValueError(m.mode)


def inject_peft(model: nn.Module, m: MethodConfig, layout: str = "auto") -> None:
    """PEFT's low-level injection: its layers replace the targets inside the plain Hugging Face model
    (no PeftModel wrapper), so the predicate, saving, cache and compare treat it like any method."""
    import peft

    try:
        peft.inject_adapter_in_model(peft_config(m, model, layout), model)
    except ValueError as e:  # e.g. no module matches target_modules
        raise ConfigError(f"method.{m.mode}.target_modules: {first_line(e, 160)}") from None
