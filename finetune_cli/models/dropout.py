"""Cheaper dropout masks, the same dropout: every backbone ftcli loads drops with a mask drawn as
`torch.rand >= p` (keep probability 1 - p, kept values scaled by 1 / (1 - p), where the model
already drops: hidden states and attention probabilities).

Why hand-written: torch's CPU dropout draws its mask with `bernoulli_`, several times slower than
`rand` and a comparison (bench/profiling.py put dropout at 13-21% of a MiniLM training step on a
CPU, more in bf16; benchmarks/dropout_masks.py measures the difference), and no library offers a
cheaper mask. Nothing else changes: the same p in the same places, the same distribution, eval
untouched (no dropout, and attention is transformers' own SDPA call then, so evaluation logits are
bit-identical to the stock model's). Only the random stream differs, so a run is reproducible
against itself, not against one trained with torch's masks.

Hidden-state dropout: every `nn.Dropout` is replaced (setattr) by a `MaskDropout` of the same p.
Attention dropout happens inside SDPA, so a model on SDPA gets transformers' documented extension
point instead: the attention function `ftcli_sdpa` (AttentionInterface), which in training with
dropout on a CPU computes softmax(QKᵀ·scale + mask) with this mask, then ·V, in fp32 as SDPA's math
path does (also for bf16 inputs), and otherwise (evaluation, GPUs) calls transformers' SDPA attention
unchanged. On a GPU the dropout modules call torch's fused dropout.
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION = "ftcli_sdpa"


class MaskedScale(torch.autograd.Function):
    """x * mask / (1 - p) with the boolean mask kept for backward (as torch's dropout keeps it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def drop(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout in training: keep each element with probability 1 - p (an fp32 uniform draw, whatever x's dtype)."""
    with torch.profiler.record_function("ftcli.dropout"):  # what `ftcli bench --profile` counts as dropout
        mask = torch.rand(x.shape, device=x.device) >= p  # [x.shape] bool
        return MaskedScale.apply(x, mask, 1.0 / (1.0 - p))


class MaskDropout(nn.Dropout):
    """nn.Dropout with the cheaper mask (an nn.Dropout still: `.p` and isinstance checks hold)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0 or x.device.type != "cpu":  # a GPU's fused dropout is already cheap
            return nn.functional.dropout(x, self.p, True)
        return drop(x, self.p)


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """transformers' attention-function signature; query/key/value [batch, heads, seq, head_dim]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or kwargs.get("is_causal") or query.device.type != "cpu":  # GPUs: their fused kernels
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    with torch.autocast(device_type="cpu", enabled=False):  # in fp32, as SDPA's math path computes bf16 inputs
        q, k, v = query.float(), key.float(), value.float()
        scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # [batch, heads, seq_q, seq_k]
        if attention_mask is not None:
            mask = attention_mask[..., : key.shape[-2]]
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        probs = torch.softmax(scores, dim=-1)
        if attention_mask is not None and mask.dtype == torch.bool:
            probs = probs.masked_fill(~mask.any(-1, keepdim=True), 0.0)  # a row that sees nothing: 0, as SDPA
        out = torch.matmul(drop(probs, dropout), v)  # [batch, heads, seq_q, head_dim]
    return out.to(value.dtype).transpose(1, 2).contiguous(), None  # [batch, seq_q, heads, head_dim]


def register_attention() -> None:
    """The attention function and, under the same name, SDPA's mask (a name without a mask function
    gets no padding mask at all from transformers)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_mask_dropout(model: nn.Module) -> None:
    """Every nn.Dropout of `model` a MaskDropout, and SDPA attention `ftcli_sdpa` (see the module doc)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:  # exactly torch's: a subclass may do something else
                setattr(parent, name, MaskDropout(child.p, child.inplace))
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
        register_attention()
        model.set_attn_implementation(ATTENTION)


def use_torch_dropout(model: nn.Module) -> None:
    """The inverse of use_mask_dropout: torch's nn.Dropout and transformers' SDPA back (the stock
    model, which benchmarks/dropout_masks.py and the tests compare against)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MaskDropout):
                setattr(parent, name, nn.Dropout(child.p, child.inplace))
    if getattr(model.config, "_attn_implementation", None) == ATTENTION:
        model.set_attn_implementation("sdpa")
