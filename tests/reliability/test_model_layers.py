"""Whole-model quantization replaces Linears by `QuantLinear`; modules for which that would
silently change or skip what the model computes are refused, with the module named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.core.model_quant import capture_linear_inputs, quantize_model
from quantlib.bit_type import BitType
from quantlib.quant_config import QuantConfig


class ScaledLinear(nn.Linear):
    """A Linear subclass whose own forward matters (like LoRA or a masked Linear)."""

    def forward(self, x):
        return 3.0 * super().forward(x)


class RenamedLinear(nn.Linear):
    """A subclass that keeps nn.Linear's forward: quantizing it is fine."""


class Model(nn.Module):
    def __init__(self, first: nn.Module):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.first = first
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h = self.first(x)
        h, _ = self.attn(h.unsqueeze(1), h.unsqueeze(1), h.unsqueeze(1))
        return self.head(h.squeeze(1))


def _configs():
    cfg = QuantConfig(bit_type=BitType(8, True))
    return {"weight": cfg, "output": cfg, "activation": None}


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=gen)
    return x, x, torch.randint(0, 4, (32,), generator=gen)


@pytest.mark.parametrize(("layers", "message"), [
    (["first"], r"'first' is a .*ScaledLinear, an nn.Linear subclass with its own forward"),
    (None, r"'first' is a .*ScaledLinear"),  # "all Linears" does not skip it silently
    (["attn.out_proj"], r"'attn.out_proj' belongs to an nn.MultiheadAttention"),
    (["embed"], r"'embed' is not an nn.Linear of the model"),
], ids=["custom-forward", "custom-forward-by-default", "attention-out-proj", "embedding"])
def test_layers_that_quantlinear_cannot_stand_in_for_are_refused(layers, message):
    torch.manual_seed(0)
    model = Model(ScaledLinear(8, 8))
    with pytest.raises(ValueError, match=message):
        quantize_model(model, _configs(), *_data(), layers=layers)
    with pytest.raises(ValueError, match=message):
        capture_linear_inputs(model, _data()[0], layers or ["first"])


def test_a_subclass_with_linears_own_forward_is_still_quantized():
    torch.manual_seed(0)
    model = Model(RenamedLinear(8, 8))
    result = quantize_model(model, _configs(), *_data(), layers=["first", "head"])
    assert [row.name for row in result.layers] == ["first", "head"]
