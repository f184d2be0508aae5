"""The methods PEFT implements (lora, with DoRA as its `use_dora`; ia3): their PEFT config and the
injection of PEFT's layers into the plain Hugging Face model.

PEFT is imported inside the functions, not at the top: importing it costs ~2 s that no other method
(and no `ftcli --help`) should pay.
"""

from __future__ import annotations

from torch import nn

from ..config import MethodConfig
from ..errors import ConfigError, first_line


def peft_config(m: MethodConfig, **extra):
    """PEFT's config for a `lora` or `ia3` method (`extra`: e.g. task_type for an exported adapter)."""
    import peft

    if m.mode == "lora":
        return peft.LoraConfig(r=m.lora.r, lora_alpha=m.lora.alpha, lora_dropout=m.lora.dropout,
                               target_modules=list(m.lora.target_modules), use_dora=m.lora.use_dora, **extra)
    if m.mode == "ia3":
        return peft.IA3Config(target_modules=list(m.ia3.target_modules),
                              feedforward_modules=list(m.ia3.feedforward_modules), **extra)
    raise ValueError(m.mode)


def inject_peft(model: nn.Module, m: MethodConfig) -> None:
    """PEFT's low-level injection: its layers replace the targets inside the plain Hugging Face model
    (no PeftModel wrapper), so the predicate, saving, cache and compare treat it like any method."""
    import peft

    try:
        peft.inject_adapter_in_model(peft_config(m), model)
    except ValueError as e:  # e.g. no module matches target_modules
        raise ConfigError(f"method.{m.mode}.target_modules: {first_line(e, 160)}") from None
