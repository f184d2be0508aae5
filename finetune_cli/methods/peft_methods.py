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
from ..models.families import family_of


def with_targets(m: MethodConfig, model: nn.Module, layout: str = "auto") -> MethodConfig:
    """`m` with `target_modules: auto` (and ia3's `feedforward_modules: auto`) resolved to the model
    family's defaults (models/families.py); explicit lists are kept as given."""
    if m.mode == "lora" and m.lora.target_modules == "auto":
        needed = "method.lora.target_modules: auto needs its default targets"
        targets = family_of(model.config.model_type, layout, needed).lora_targets
        return dataclasses.replace(m, lora=dataclasses.replace(m.lora, target_modules=targets))
    if m.mode == "ia3" and "auto" in (m.ia3.target_modules, m.ia3.feedforward_modules):
        family = family_of(model.config.model_type, layout, "method.ia3 auto targets need its defaults")
        targets = family.ia3_targets if m.ia3.target_modules == "auto" else m.ia3.target_modules
        feedforward = family.ia3_feedforward if m.ia3.feedforward_modules == "auto" else m.ia3.feedforward_modules
        return dataclasses.replace(m, ia3=dataclasses.replace(m.ia3, target_modules=targets,
                                                              feedforward_modules=feedforward))
    return m


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
