"""Surgeries: what a method inserts into the model before the predicate decides what trains.

`SURGERIES` maps the names the registry's records give (`MethodSpec.surgery`) to functions: a plain
dict, so no string is ever turned into an import or code (tests/test_security.py), and a test checks
that it covers the registry exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..config import MethodConfig
from .adapters import add_layerwise_adapters, add_pfeiffer_adapters, add_top_adapter, layout_of
from .peft_methods import inject_peft

# (model, the method's settings, model.layout): `layout` picks the architecture-table entry
Surgery = Callable[[nn.Module, MethodConfig, str], None]


def layerwise_adapters(model: nn.Module, m: MethodConfig, layout: str) -> None:
    add_layerwise_adapters(model, layout_of(model, layout, "layerwise"), m.bottleneck, m.init_std, m.activation)


def top_adapter(model: nn.Module, m: MethodConfig, layout: str) -> None:
    add_top_adapter(model, layout_of(model, layout, "top"), m.bottleneck, m.init_std, m.activation)


def pfeiffer_adapters(model: nn.Module, m: MethodConfig, layout: str) -> None:
    add_pfeiffer_adapters(model, layout_of(model, layout, "pfeiffer"), m.bottleneck, m.init_std, m.activation)


SURGERIES: dict[str, Surgery] = {
    "layerwise_adapters": layerwise_adapters,
    "top_adapter": top_adapter,
    "pfeiffer_adapters": pfeiffer_adapters,
    "peft": inject_peft,
}
