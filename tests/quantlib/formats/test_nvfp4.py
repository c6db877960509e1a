"""NVFP4 against torchao 0.18's NVFP4Tensor.to_nvfp4(...).dequantize()."""

from __future__ import annotations

import pytest
import torch

from quantlib.formats import fake_quantize
from tests.quantlib.formats.data import DISTRIBUTIONS, make_data
from tests.quantlib.formats.reference import (
    assert_equal_or_zero_where_reference_nan,
    nvfp4_reference,
)

SHAPES = [(8, 64), (2, 3, 96), (1, 16), (4, 256)]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_nvfp4_matches_torchao(shape, distribution):
    x = make_data(distribution, shape)
    assert_equal_or_zero_where_reference_nan(fake_quantize(x, "nvfp4"), nvfp4_reference(x), x)


@pytest.mark.parametrize("distribution", ["gaussian", "outliers", "wide", "zeros"])
def test_nvfp4_bfloat16_matches_torchao(distribution):
    x = make_data(distribution, (4, 128), dtype=torch.bfloat16)
    ours = fake_quantize(x, "nvfp4", block_size=16)
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, nvfp4_reference(x))


@pytest.mark.parametrize("factor", [0.25, 1.0, 4.0], ids=["clip", "exact", "loose"])
def test_nvfp4_calibrated_amax_matches_torchao(factor):
    x = make_data("outliers", (8, 64))
    amax = x.abs().amax() * factor
    assert torch.equal(fake_quantize(x, "nvfp4", amax=amax), nvfp4_reference(x, amax))


def test_nvfp4_all_zero_tensor_gives_zeros_where_torchao_gives_nan():
    x = torch.zeros(2, 32)
    assert torch.isnan(nvfp4_reference(x)).all()
    assert torch.equal(fake_quantize(x, "nvfp4"), x)
