"""Block-wise INT against torch.fake_quantize_per_channel_affine on the block view."""

from __future__ import annotations

import pytest
import torch

from quantlib.bit_type import BitType
from quantlib.formats import fake_quantize
from quantlib.quantizers.functional import EPS
from tests.quantlib.formats.data import DISTRIBUTIONS, make_data

NAMES = ["int4", "int8", "uint4", "uint8", "int2", "int16"]


def reference_qparams(block: torch.Tensor, bit_type: BitType, symmetric: bool):
    """torch.ao's rules (DESIGN.md section 2), one block at a time in plain Python."""
    qmin, qmax = bit_type.qmin, bit_type.qmax
    min_neg, max_pos = min(float(block.min()), 0.0), max(float(block.max()), 0.0)
    if symmetric:
        scale = torch.tensor(max(-min_neg, max_pos), dtype=torch.float32) / ((qmax - qmin) / 2)
        scale = max(float(scale), EPS)
        zero = 0 if bit_type.signed else 2 ** (bit_type.bits - 1)
    else:
        scale = float(torch.tensor(max_pos - min_neg, dtype=torch.float32) / float(qmax - qmin))
        scale = max(scale, EPS)
        rounded = torch.round(torch.tensor(min_neg) / torch.tensor(scale))  # float32
        zero = int(min(max(qmin - int(rounded), qmin), qmax))
    return scale, zero


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("block_size", [16, 32, 64])
@pytest.mark.parametrize("symmetric", [True, False], ids=["uniform", "affine"])
@pytest.mark.parametrize("name", NAMES)
def test_block_int_matches_torch_per_channel_on_block_view(name, symmetric, block_size,
                                                           distribution):
    bit_type = BitType(int(name.lstrip("uint")), not name.startswith("u"))
    x = make_data(distribution, (2, 4, 128))
    block_view = x.reshape(-1, block_size)
    params = [reference_qparams(block, bit_type, symmetric) for block in block_view]
    scale = torch.tensor([s for s, _ in params], dtype=torch.float32)
    zero = torch.tensor([z for _, z in params], dtype=torch.int32)
    ref = torch.fake_quantize_per_channel_affine(block_view, scale, zero, 0, bit_type.qmin,
                                                 bit_type.qmax).reshape(x.shape)
    ours = fake_quantize(x, name, block_size=block_size, symmetric=symmetric)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("symmetric", [True, False], ids=["uniform", "affine"])
def test_block_equal_to_row_is_per_channel(symmetric):
    """block_size = in_features gives today's per-channel (axis 0) weight path."""
    w = make_data("laplace", (16, 64))
    bt = BitType(4, True)
    min_val, max_val = w.amin(dim=1), w.amax(dim=1)
    from quantlib.quantizers.functional import calculate_qparams
    scale, zero = calculate_qparams(min_val, max_val, bt, symmetric)
    ref = torch.fake_quantize_per_channel_affine(w, scale, zero.int(), 0, bt.qmin, bt.qmax)
    assert torch.equal(fake_quantize(w, "int4", block_size=64, symmetric=symmetric), ref)
    assert torch.equal(fake_quantize(w, "int4", axis=0, symmetric=symmetric), ref)


def test_per_tensor_int8_matches_torch():
    x = make_data("gaussian", (8, 32))
    scale = float(x.abs().max()) / 127.5
    ref = torch.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127)
    assert torch.equal(fake_quantize(x, "int8"), ref)
