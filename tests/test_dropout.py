"""models/dropout.py: the same dropout with cheaper masks. Kept fraction and scaling, gradients,
SDPA's maths in the training attention path, and evaluation bit-identical to the stock model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from finetune_cli.config import ModelConfig
from finetune_cli.models.backbones import load_backbone
from finetune_cli.models.dropout import ATTENTION, MaskDropout, attention, use_torch_dropout
from finetune_cli.models.tiny import TINY_NAMES


def test_mask_dropout_keeps_1_minus_p_scaled_and_its_gradient_is_the_mask():
    torch.manual_seed(0)
    drop = MaskDropout(0.1)
    x = torch.randn(400, 1000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003  # 400,000 draws: 0.9 +- 5 standard errors
    assert torch.allclose(y[kept], x[kept] / 0.9)
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / 0.9)  # d(sum)/dx: the scaled mask
    drop.eval()
    assert drop(x) is x
    assert isinstance(drop, nn.Dropout) and drop.p == 0.1  # what transformers reads (self.dropout.p)


def test_bf16_inputs_keep_their_dtype():
    torch.manual_seed(0)
    x = torch.randn(64, 64, dtype=torch.bfloat16, requires_grad=True)
    assert MaskDropout(0.5)(x).dtype == torch.bfloat16


def test_the_training_attention_is_sdpas_maths():
    """With p -> 0 the mask keeps everything: then the path must be SDPA (dropout 0), float or bool mask."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8) for _ in range(3))  # [batch, heads, seq, head_dim]
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]  # [batch, 1, 1, seq]
    additive = torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    module = nn.Module()
    module.is_causal = False
    for mask in (keep, additive, None):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3).transpose(1, 2)
        got, _ = attention(module, q, k, v, mask, dropout=1e-12, scaling=0.3)
        assert torch.allclose(got, expected, atol=1e-6), mask


def test_a_row_that_sees_nothing_is_zero_and_bf16_inputs_get_sdpas_fp32_maths():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 4, 8) for _ in range(3))
    keep = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    keep[1, :, 3, :] = False  # query 3 of example 1 sees no key (a sliding window past the padding)
    module = nn.Module()
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2)
    got, _ = attention(module, q, k, v, keep, dropout=1e-12)
    assert torch.isfinite(got).all() and torch.allclose(got, expected, atol=1e-6)
    low = [t.to(torch.bfloat16) for t in (q, k, v)]
    exact = torch.nn.functional.scaled_dot_product_attention(*(t.float() for t in low)).transpose(1, 2)
    got, _ = attention(module, *low, None, dropout=1e-12)
    assert got.dtype == torch.bfloat16  # computed in fp32 (as SDPA's math path), rounded once at the end:
    assert torch.equal(got, exact.to(torch.bfloat16))


@pytest.mark.parametrize("name", TINY_NAMES)
def test_loaded_backbones_use_it_and_evaluate_bit_identically_to_the_stock_model(name):
    torch.manual_seed(0)
    ours = load_backbone(ModelConfig(name=name), 3).model
    torch.manual_seed(0)
    theirs = load_backbone(ModelConfig(name=name), 3).model
    use_torch_dropout(theirs)
    assert not any(type(m) is nn.Dropout for m in ours.modules())
    assert any(isinstance(m, MaskDropout) for m in ours.modules())
    assert ours.config._attn_implementation == (ATTENTION if theirs.config._attn_implementation == "sdpa" else "eager")
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # padding
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        assert torch.equal(ours(input_ids=ids, attention_mask=mask).logits,
                           theirs(input_ids=ids, attention_mask=mask).logits)
    ours.train()
    torch.manual_seed(1)
    first = ours(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(1)
    assert torch.equal(first, ours(input_ids=ids, attention_mask=mask).logits)  # seeded: reproducible
    if any(isinstance(m, MaskDropout) and m.p > 0 for m in ours.modules()):  # ModernBERT's config drops nothing
        assert not torch.equal(first, ours(input_ids=ids, attention_mask=mask).logits)  # and dropout is on
