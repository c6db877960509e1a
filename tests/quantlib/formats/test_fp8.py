"""FP8 E4M3/E5M2 per tensor, per channel and per block against torchao 0.18."""

from __future__ import annotations

import pytest
import torch

from quantlib.formats import fake_quantize
from tests.quantlib.formats.data import DISTRIBUTIONS, make_data
from tests.quantlib.formats.reference import (
    assert_equal_or_zero_where_reference_nan,
    fp8_reference,
)

NAMES = ("fp8_e4m3", "fp8_e5m2")
SHAPES = [(8, 64), (2, 3, 96), (1, 32)]
GRANULARITIES = [  # (block_size, axis)
    pytest.param(None, None, id="per_tensor"),
    pytest.param(None, 0, id="per_channel_axis0"),
    pytest.param(None, -1, id="per_channel_last"),
    pytest.param(16, None, id="block16"),
    pytest.param(32, None, id="block32"),
]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("block_size, axis", GRANULARITIES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NAMES)
def test_fp8_matches_torchao(name, shape, block_size, axis, distribution):
    x = make_data(distribution, shape)
    ours = fake_quantize(x, name, block_size=block_size, axis=axis)
    if shape[0] == 1 and axis == -1:
        # torchao 0.18's _choose_scale_float8 cannot shape per-element scales on a size-1
        # leading dim: take its scale rule (amax / max_finite, here each |x|) by hand and
        # torchao's own quantize/dequantize.
        reference = per_element_fp8_reference(x, name)
    else:
        reference = fp8_reference(x, name, block_size, axis)
    assert_equal_or_zero_where_reference_nan(ours, reference, x)


def per_element_fp8_reference(x: torch.Tensor, name: str) -> torch.Tensor:
    from torchao.quantization.quant_primitives import (
        _dequantize_affine_float8,
        _quantize_affine_float8,
    )

    dtype = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}[name]
    scale = (x.abs() / torch.finfo(dtype).max).to(torch.float32)
    return _dequantize_affine_float8(_quantize_affine_float8(x, scale, dtype), scale, x.dtype)


@pytest.mark.parametrize("distribution", ["gaussian", "outliers", "wide", "huge"])
@pytest.mark.parametrize("name", NAMES)
def test_fp8_bfloat16_matches_torchao(name, distribution):
    x = make_data(distribution, (4, 64), dtype=torch.bfloat16)
    for block_size, axis in [(None, None), (None, 0), (32, None)]:
        ours = fake_quantize(x, name, block_size=block_size, axis=axis)
        assert ours.dtype == torch.bfloat16
        assert torch.equal(ours, fp8_reference(x, name, block_size, axis))


@pytest.mark.parametrize("name", NAMES)
def test_fp8_clipping_amax_matches_torchao_upper_bound(name):
    """An observer's clipped range (amax below max|x|) saturates like torchao's hp_value_ub."""
    x = make_data("outliers", (8, 64))
    clip = float(x.abs().amax()) / 8
    ours = fake_quantize(x, name, amax=clip)
    assert torch.equal(ours, fp8_reference(x, name, hp_value_ub=clip))
    assert float(ours.abs().amax()) == pytest.approx(clip, rel=1e-6)


def test_fp8_per_channel_amax_accepts_one_value_per_channel():
    x = make_data("gaussian", (8, 64))
    amax = x.abs().amax(dim=1)  # [8], as an observer would hold it
    assert torch.equal(fake_quantize(x, "fp8_e4m3", axis=0, amax=amax),
                       fake_quantize(x, "fp8_e4m3", axis=0))


def test_fp8_all_zero_block_gives_zero_where_torchao_gives_nan():
    x = torch.zeros(2, 32)
    x[1] = torch.linspace(-1, 1, 32)
    ref = fp8_reference(x, "fp8_e4m3", block_size=32)
    assert torch.isnan(ref[0]).all()  # torchao: scale 0, 0/0
    ours = fake_quantize(x, "fp8_e4m3", block_size=32)
    assert torch.equal(ours[0], torch.zeros(32))
    assert torch.equal(ours[1], ref[1])


def test_fp8_e4m3_hand_worked_grid():
    """Per tensor with amax 448 the scale is 1, so values land on the E4M3 grid itself:
    between 256 and 448 the step is 32, 0.0625..0.125 has step 2^-7 (normals down to 2^-6),
    subnormals are multiples of 2^-9, ties go to even."""
    x = torch.tensor([448.0, 272.0, 304.0, 2.0**-9 * 1.5, 2.0**-9 * 2.5, 2.0**-10, 0.07])
    expected = torch.tensor([448.0, 256.0, 320.0, 2.0**-9 * 2, 2.0**-9 * 2, 0.0, 0.0703125])
    assert torch.equal(fake_quantize(x, "fp8_e4m3"), expected)
