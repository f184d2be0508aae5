"""Bottleneck adapters (Houlsby et al. 2019) and their injection into any encoder of the
architecture table (models/families.py: where each family's sublayer outputs and LayerNorms are).

Injection replaces a submodule with `nn.Sequential(original, Adapter)` through `setattr`: no class
is swapped and no Hugging Face `forward` is copied, so the model's own code runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ..errors import ModelError
from ..models.families import OVERRIDES, Family, family_of

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


class Adapter(nn.Module):
    """Bottleneck adapter of Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP"
    (arXiv 1902.00751, Fig. 2): `h + up(act(down(h)))` with down: d -> m, up: m -> d, both with
    biases. Weights start as truncated normals of std `init_std` (cut at 2 std) and biases at
    zero, so a new adapter is close to the identity (google-research/adapter-bert uses 1e-3)."""

    def __init__(self, dim: int, bottleneck: int, init_std: float = 1e-3, activation: str = "gelu"):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, dim)
        for linear in (self.down, self.up):
            if init_std > 0:
                nn.init.trunc_normal_(linear.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            else:
                nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.active = True  # False bypasses the adapter (identity); set through `bypassed` only

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return h
        # h: [batch, seq, d] -> [batch, seq, m] -> [batch, seq, d]; the skip keeps it near identity
        return h + self.up(self.act(self.down(h)))

    def delta(self, h: torch.Tensor) -> torch.Tensor:
        """What the adapter adds to `h` (zero when bypassed): for placements whose skip is elsewhere."""
        if not self.active:
            return torch.zeros_like(h)
        return self.up(self.act(self.down(h)))  # [batch, seq, d] -> [batch, seq, m] -> [batch, seq, d]


def adapters_in(module: nn.Module) -> list[Adapter]:
    """Every Adapter inside `module` (itself included), in module order."""
    return [m for m in module.modules() if isinstance(m, Adapter)]


@contextlib.contextmanager
def bypassed(adapters: Iterable[Adapter]) -> Iterator[None]:
    """Run with `adapters` as identities (torchtune's `disable_adapter`); on the way out, even
    through an exception, exactly the adapters this switched off are switched on again."""
    switched = [a for a in adapters if a.active]
    for adapter in switched:
        adapter.active = False
    try:
        yield
    finally:
        for adapter in switched:
            adapter.active = True


class NormWithAdapter(nn.Module):
    """A layer's residual LayerNorm with a Pfeiffer adapter (AdapterHub's `seq_bn`) around it.

    BERT's output block computes `LN(s)` with `s = dropout(dense(x)) + x`; AdapterHub's sequential
    bottleneck (original_ln_before, residual_before_ln, original_ln_after) makes it
    `LN(s + adapter_delta(LN(s)))`, with the same LayerNorm twice. Wrapping the LayerNorm gives that
    without copying BertOutput.forward, because `s` is exactly what the LayerNorm receives."""

    def __init__(self, norm: nn.LayerNorm, adapter: Adapter):
        super().__init__()
        self.norm = norm
        self.adapter = adapter

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.norm(s + self.adapter.delta(self.norm(s)))  # s: [batch, seq, d]


def module_at(root: nn.Module, path: str) -> nn.Module | None:
    """The submodule at a dotted path, where an integer part indexes a ModuleList (-1: the last);
    None when there is none."""
    node = root
    for part in path.split(".") if path else ():
        if isinstance(node, nn.ModuleList) and part.lstrip("-").isdigit():
            node = node[int(part)] if -len(node) <= int(part) < len(node) else None
        else:
            node = getattr(node, part, None)
        if not isinstance(node, nn.Module):
            return None
    return node


def wrap_with_adapter(root: nn.Module, path: str, adapter: Adapter, before: bool = False) -> None:
    """Replace the module at `path` by `Sequential(it, adapter)` (the adapter sees its output), or
    with `before` by `Sequential(adapter, it)` (the adapter changes its input)."""
    parent_path, _, child = path.rpartition(".")
    parent, original = module_at(root, parent_path), module_at(root, path)
    if parent is None or original is None:
        raise ModelError(f"{root.__class__.__name__} has no submodule {path!r} to put an adapter at")
    parts = [("adapter", adapter), ("original", original)] if before else [("original", original), ("adapter", adapter)]
    setattr(parent, child, nn.Sequential(OrderedDict(parts)))


def base_model(model: nn.Module) -> nn.Module:
    return getattr(model, model.base_model_prefix, model)


def layout_of(model: nn.Module, layout: str, mode: str) -> Family:
    """The architecture-table entry of a model (families.py), for a method `mode` that needs it."""
    return family_of(model.config.model_type, layout, f"method {mode} needs its layer list and sublayer outputs")


def encoder_layers(model: nn.Module, family: Family) -> list[tuple[str, nn.Module]]:
    """(name in the model, module) of each distinct transformer layer, in depth order: the table's
    `layers` path (a ModuleList), every `*` expanded (ALBERT: its shared layers, once each)."""
    found = [(model.base_model_prefix, base_model(model))]
    for part in [*family.layers.split("."), "*"]:
        if part == "*":
            found = [(f"{name}.{i}", child) for name, mod in found if isinstance(mod, nn.ModuleList)
                     for i, child in enumerate(mod)]
        else:
            found = [(f"{name}.{part}", getattr(mod, part)) for name, mod in found
                     if isinstance(getattr(mod, part, None), nn.Module)]
    layers = [(name, mod) for name, mod in found if not isinstance(mod, nn.ModuleList)]
    if not found or len(layers) < len(found):
        raise ModelError(f"{model.__class__.__name__}: no layer list at {family.layers!r} ({family.name} layout); "
                         f"{OVERRIDES}")
    return layers


def _require(layers: list[tuple[str, nn.Module]], path: str, kind: type, family: Family) -> None:
    """Every layer has a `kind` at `path`, checked before any layer is changed."""
    for name, layer in layers:
        if not isinstance(module_at(layer, path), kind):
            what = "module" if kind is nn.Module else kind.__name__
            raise ModelError(f"{name} has no {what} at {path!r} ({layer.__class__.__name__}); the "
                             f"{family.name} layout expects one; {OVERRIDES}")


def hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def check_bottleneck(model: nn.Module, bottleneck: int) -> None:
    d = hidden_size(model)
    if bottleneck >= d:
        raise ModelError(f"method.bottleneck: {bottleneck} must be smaller than the hidden size {d} "
                         "(a bottleneck compresses)")


def add_layerwise_adapters(model: nn.Module, family: Family, bottleneck: int, init_std: float,
                           activation: str) -> None:
    """Two adapters per layer (paper Fig. 2), on the attention and the feed-forward sublayer's
    output, before the residual add (and, post-LN, the LayerNorm): families.py's placement rule."""
    check_bottleneck(model, bottleneck)
    d, layers = hidden_size(model), encoder_layers(model, family)
    for path in (family.attention_out, family.ffn_out):
        _require(layers, path, nn.Module, family)
    for _, layer in layers:
        for path in (family.attention_out, family.ffn_out):
            wrap_with_adapter(layer, path, Adapter(d, bottleneck, init_std, activation))


def add_pfeiffer_adapters(model: nn.Module, family: Family, bottleneck: int, init_std: float,
                          activation: str) -> None:
    """One adapter per layer, for the feed-forward block only (Pfeiffer et al. 2021): post-LN,
    around the layer's feed-forward LayerNorm (NormWithAdapter); pre-LN, on the feed-forward output."""
    check_bottleneck(model, bottleneck)
    d, layers = hidden_size(model), encoder_layers(model, family)
    if family.ffn_norm is None:
        _require(layers, family.ffn_out, nn.Module, family)
        for _, layer in layers:
            wrap_with_adapter(layer, family.ffn_out, Adapter(d, bottleneck, init_std, activation))
        return
    _require(layers, family.ffn_norm, nn.LayerNorm, family)
    parent_path, _, child = family.ffn_norm.rpartition(".")
    for _, layer in layers:
        parent = module_at(layer, parent_path)
        setattr(parent, child, NormWithAdapter(getattr(parent, child), Adapter(d, bottleneck, init_std, activation)))


def add_top_adapter(model: nn.Module, family: Family, bottleneck: int, init_std: float, activation: str) -> None:
    """One adapter on the final hidden state (after the last layer's LayerNorm, pre-LN after the final
    LayerNorm; ALBERT: on the input of the pooler, which reads only the last depth's output)."""
    check_bottleneck(model, bottleneck)
    adapter = Adapter(hidden_size(model), bottleneck, init_std, activation)
    wrap_with_adapter(base_model(model), family.last_hidden, adapter, before=family.top_before)


def top_adapter(model: nn.Module, family: Family) -> Adapter | None:
    """The adapter `add_top_adapter` put at the family's last hidden state, if there is one."""
    wrapped = module_at(base_model(model), family.last_hidden)
    adapter = getattr(wrapped, "adapter", None)
    return adapter if isinstance(wrapped, nn.Sequential) and isinstance(adapter, Adapter) else None
