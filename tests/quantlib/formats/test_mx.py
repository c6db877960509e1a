"""MX block formats against torchao 0.18's to_mx(..., FLOOR) + to_dtype; MXINT8 by hand."""

from __future__ import annotations

import pytest
import torch

from quantlib.formats import fake_quantize
from tests.quantlib.formats.data import DISTRIBUTIONS, make_data
from tests.quantlib.formats.reference import MX_ELEMENT_DTYPES, mx_reference

SHAPES = [(8, 64), (2, 3, 96), (1, 32), (4, 256)]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MX_ELEMENT_DTYPES))
def test_mx_matches_torchao(name, shape, distribution):
    x = make_data(distribution, shape)
    assert torch.equal(fake_quantize(x, name), mx_reference(x, name))


@pytest.mark.parametrize("distribution", ["gaussian", "outliers", "wide", "zeros"])
@pytest.mark.parametrize("name", list(MX_ELEMENT_DTYPES))
def test_mx_bfloat16_matches_torchao(name, distribution):
    x = make_data(distribution, (4, 128), dtype=torch.bfloat16)
    ours = fake_quantize(x, name, block_size=32)
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, mx_reference(x, name))


@pytest.mark.parametrize("name", list(MX_ELEMENT_DTYPES))
def test_mx_extreme_exponents_match_torchao(name):
    """Blocks whose amax sits at float32's edges: subnormal, smallest normal, largest."""
    x = torch.randn(6, 32)
    x[0] *= 1e-40  # subnormal amax: scale exponent clamps to -127
    x[1] = x[1] / x[1].abs().max() * 2.0**-126
    x[2] = x[2] / x[2].abs().max() * 3.0e38
    x[3] = 0.0
    x[4, 0] = 2.0**-149
    x[5] = x[5] / x[5].abs().max() * 2.0**-118
    assert torch.equal(fake_quantize(x, name), mx_reference(x, name))


def test_mxfp4_hand_worked_block():
    """amax 3.0 -> floor(log2 3) = 1, minus emax(E2M1) = 2 -> scale 2^-1. x / 0.5 is rounded to
    the E2M1 grid {0, .5, 1, 1.5, 2, 3, 4, 6} (ties to even mantissa) and multiplied back."""
    x = torch.zeros(32)
    x[:6] = torch.tensor([3.0, 1.25, -0.875, 0.1, 0.125, 2.6])
    # 6.0->6, 2.5->2 (tie to even), -1.75->-2, 0.2->0, 0.25->0 (tie to 0), 5.2->6 (sat. 6)
    expected = torch.zeros(32)
    expected[:6] = torch.tensor([3.0, 1.0, -1.0, 0.0, 0.0, 3.0])
    assert torch.equal(fake_quantize(x, "mxfp4"), expected)


def test_mxint8_hand_worked_blocks():
    """OCP MX v1.0: X = 2^floor(log2 amax) (emax of INT8 = 0); elements k/64, |k| <= 127."""
    x = torch.zeros(3, 32)
    # amax 1.5 -> X = 1: values rounded to multiples of 1/64, ties to even
    x[0, :5] = torch.tensor([1.5, 0.5 / 64, 1.5 / 64, -0.3, 1.0 / 128])
    # amax 7.9 -> X = 4: 7.9/4 = 1.975 -> 126.4/64 -> k = 126; -7.99/4*64 = -127.84 -> -127
    x[1, :3] = torch.tensor([7.9, -7.99, 4.0 / 64 * 2.5])
    # amax 1e-3 -> X = 2^-10
    x[2, :2] = torch.tensor([1e-3, -2.0**-10 * 0.5])
    expected = torch.zeros(3, 32)
    expected[0, :5] = torch.tensor([1.5, 0.0, 2.0 / 64, -19.0 / 64, 0.0])
    expected[1, :3] = torch.tensor([126.0 / 64 * 4, -127.0 / 64 * 4, 2.0 / 64 * 4])
    expected[2, :2] = torch.tensor([round(1e-3 * 2**10 * 64) / 64 * 2.0**-10,
                                    -2.0**-10 * 0.5])
    assert torch.equal(fake_quantize(x, "mxint8"), expected)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_mxint8_properties(distribution):
    """Every output is k/64 * 2^e of its block, |k| <= 127, and the error is at most half a
    step unless the value clipped at 127/64 * X."""
    x = make_data(distribution, (4, 128))
    out = fake_quantize(x, "mxint8")
    blocks, out_blocks = x.view(-1, 32), out.view(-1, 32)
    amax = blocks.abs().amax(dim=1, keepdim=True)
    exponent = torch.where(amax > 0, torch.floor(torch.log2(amax.double())), -127.0).clamp(-127)
    step = torch.exp2(exponent - 6)
    k = out_blocks.double() / step
    assert torch.equal(k, k.round()) and k.abs().max() <= 127
    clipped = blocks.double().abs() > 127 * step
    err = (out_blocks.double() - blocks.double()).abs()
    assert (err[~clipped] <= step.expand_as(err)[~clipped] / 2).all()
