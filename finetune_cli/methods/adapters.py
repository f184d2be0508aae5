"""Bottleneck adapters (Houlsby et al. 2019) and their injection into a BERT-family encoder.

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


def wrap_with_adapter(parent: nn.Module, child: str, adapter: Adapter) -> None:
    """Replace `parent.<child>` by `Sequential(child, adapter)`: the adapter sees its output."""
    original = getattr(parent, child, None)
    if not isinstance(original, nn.Module):
        raise ModelError(f"{parent.__class__.__name__} has no submodule {child!r} to put an adapter after")
    setattr(parent, child, nn.Sequential(OrderedDict(original=original, adapter=adapter)))


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer layers of a BERT-family classifier (`<backbone>.encoder.layer`)."""
    backbone = getattr(model, model.base_model_prefix, model)
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ModelError(f"{model.__class__.__name__}: no encoder.layer list found; adapters need a "
                         "BERT-family encoder (BertModel, RobertaModel, ...)")
    return layers


def _require(layer: nn.Module, path: str, kind: type, index: int) -> None:
    module = layer.get_submodule(path) if _has(layer, path) else None
    if not isinstance(module, kind):
        raise ModelError(f"encoder layer {index} has no {kind.__name__} at {path!r} "
                         f"({layer.__class__.__name__}); layerwise adapters need BERT's layer layout "
                         "(attention.output and output with dense, dropout, LayerNorm)")


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def check_bottleneck(model: nn.Module, bottleneck: int) -> None:
    d = hidden_size(model)
    if bottleneck >= d:
        raise ModelError(f"method.bottleneck: {bottleneck} must be smaller than the hidden size {d} "
                         "(a bottleneck compresses)")


def add_layerwise_adapters(model: nn.Module, bottleneck: int, init_std: float, activation: str) -> None:
    """Two adapters per layer (paper Fig. 2): after the attention output projection + dropout and
    after the feed-forward output projection + dropout, both before the residual add + LayerNorm."""
    check_bottleneck(model, bottleneck)
    d = hidden_size(model)
    layers = encoder_layers(model)
    for i, layer in enumerate(layers):  # check every layer before changing any
        for block in ("attention.output", "output"):
            _require(layer, f"{block}.dropout", nn.Dropout, i)
            _require(layer, f"{block}.LayerNorm", nn.LayerNorm, i)
    for layer in layers:
        for block in (layer.attention.output, layer.output):
            wrap_with_adapter(block, "dropout", Adapter(d, bottleneck, init_std, activation))


def add_pfeiffer_adapters(model: nn.Module, bottleneck: int, init_std: float, activation: str) -> None:
    """One adapter per layer, after the feed-forward block only (Pfeiffer et al. 2021): around each
    layer's output LayerNorm, see NormWithAdapter."""
    check_bottleneck(model, bottleneck)
    d = hidden_size(model)
    layers = encoder_layers(model)
    for i, layer in enumerate(layers):  # check every layer before changing any
        _require(layer, "output.LayerNorm", nn.LayerNorm, i)
    for layer in layers:
        adapter = Adapter(d, bottleneck, init_std, activation)
        layer.output.LayerNorm = NormWithAdapter(layer.output.LayerNorm, adapter)


def add_top_adapter(model: nn.Module, bottleneck: int, init_std: float, activation: str) -> None:
    """One adapter on the final encoder layer's output (after its LayerNorm), before pooling."""
    check_bottleneck(model, bottleneck)
    last = encoder_layers(model)[-1]
    _require(last, "output.LayerNorm", nn.LayerNorm, len(encoder_layers(model)) - 1)
    wrap_with_adapter(last.output, "LayerNorm", Adapter(hidden_size(model), bottleneck, init_std, activation))


def top_adapter(model: nn.Module) -> Adapter | None:
    """The adapter `add_top_adapter` put after the last layer's output LayerNorm, if there is one."""
    try:
        last = encoder_layers(model)[-1]
    except ModelError:
        return None
    wrapped = getattr(getattr(last, "output", None), "LayerNorm", None)
    adapter = getattr(wrapped, "adapter", None)
    return adapter if isinstance(wrapped, nn.Sequential) and isinstance(adapter, Adapter) else None
