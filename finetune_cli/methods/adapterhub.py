"""AdapterHub's (`adapters` 1.3.0) bottleneck configs that compute what ftcli's bottleneck methods
compute: what `ftcli export` writes as adapter_config.json and what `ftcli bench --peers adapterhub`
builds its Houlsby contender from."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..config import MethodConfig
from .adapters import Adapter, NormWithAdapter
from .predicate import Predicate

# AdapterHub bottleneck configs (its BnConfig fields) that compute what each ftcli method computes; one
# per method whose registry export is adapterhub (tests/test_registry.py checks it)
ADAPTERHUB_CONFIGS = {
    # Houlsby (its DoubleSeqBnConfig): h + up(act(down(h))) after each projection + dropout, then LN(. + x)
    "layerwise": {"mh_adapter": True, "output_adapter": True, "original_ln_before": False,
                  "original_ln_after": True, "residual_before_ln": True},
    # Pfeiffer (its SeqBnConfig): LN(s + up(act(down(LN(s))))) with s = h + x, feed-forward block only
    "pfeiffer": {"mh_adapter": False, "output_adapter": True, "original_ln_before": True,
                 "original_ln_after": True, "residual_before_ln": True},
    # ftcli's top adapter: LN(s) + up(act(down(LN(s)))) in the last layer only, no second LayerNorm
    "top": {"mh_adapter": False, "output_adapter": True, "original_ln_before": True,
            "original_ln_after": False, "residual_before_ln": False},
}


def adapterhub_config(method: MethodConfig, hidden_size: int, layers: int) -> dict[str, Any]:
    """The BnConfig fields of `method` (layerwise, pfeiffer or top) on a model of `layers` layers of
    `hidden_size`; AdapterHub sizes an adapter as hidden_size // reduction_factor."""
    leave_out = list(range(layers - 1)) if method.mode == "top" else []
    return {**ADAPTERHUB_CONFIGS[method.mode], "reduction_factor": hidden_size / method.bottleneck,
            "non_linearity": method.activation, "leave_out": leave_out, "ln_before": False, "ln_after": False,
            "adapter_residual_before_ln": False, "scaling": 1.0, "dropout": 0.0}


def plain_name(model: nn.Module, name: str) -> str:
    """The Hugging Face name of a tensor that sits inside one of ftcli's wrappers (the wrapped module
    is `original` in the Sequential of wrap_with_adapter and `norm` in NormWithAdapter)."""
    for path, module in model.named_modules():
        inner = _wrapped_child(module)
        if inner and name.startswith(f"{path}.{inner}."):
            return f"{path}.{name[len(path) + len(inner) + 2:]}"
    return name


def _wrapped_child(module: nn.Module) -> str | None:
    if isinstance(module, NormWithAdapter):
        return "norm"
    if isinstance(module, nn.Sequential) and isinstance(getattr(module, "adapter", None), Adapter):
        return "original"
    return None


def non_adapter_trained(model: nn.Module, is_trained: Predicate) -> list[str]:
    """The Hugging Face names of the trained tensors outside the adapters (LayerNorms, the head):
    what AdapterHub's train_adapter freezes and a Houlsby set-up as ftcli's trains as well."""
    inside = {f"{path}.{n}" for path, m in model.named_modules() if isinstance(m, Adapter)
              for n, _ in m.named_parameters()}
    return [plain_name(model, n) for n, _ in model.named_parameters() if is_trained(n) and n not in inside]
