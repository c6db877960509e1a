"""The format registry: names, specs, errors, and a theory-based SQNR check."""

from __future__ import annotations

import math

import pytest
import torch

from quantlib.formats import FORMATS, fake_quantize, get_format
from tests.quantlib.formats.data import make_data, qsnr_db

FLOAT_NAMES = ["fp8_e4m3", "fp8_e5m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3",
               "mxfp6_e3m2", "mxfp4", "mxint8", "nvfp4"]


def test_registry_holds_every_contract_name():
    for name in FLOAT_NAMES + ["int2", "int4", "int8", "int16", "uint2", "uint8", "uint16"]:
        assert FORMATS[name].name == name
    assert FORMATS["mxfp4"].block_size == 32 and FORMATS["nvfp4"].block_size == 16
    assert FORMATS["fp8_e4m3"].block_size is None and FORMATS["int4"].block_size is None
    assert FORMATS["mxfp6_e3m2"].element_bits == 6 and FORMATS["mxfp6_e3m2"].max_finite == 28
    assert FORMATS["uint4"].signed is False and FORMATS["uint4"].max_finite == 15


@pytest.mark.parametrize("name", ["fp4", "int1", "int17", "MXFP4", "", None])
def test_unknown_name_lists_valid_ones(name):
    with pytest.raises(ValueError, match="valid formats: int2..int16, uint2..uint16, .*nvfp4"):
        get_format(name)


@pytest.mark.parametrize("name, block_size, match", [
    ("int4", 48, "block_size 48 must divide the last dimension \\(size 64\\)"),
    ("fp8_e4m3", 0, "block_size must be a positive integer"),
    ("mxfp4", 16, "mxfp4 needs block_size 32, got 16"),
    ("mxint8", 64, "mxint8 needs block_size 32"),
    ("nvfp4", 32, "nvfp4 needs block_size 16, got 32"),
])
def test_bad_block_size(name, block_size, match):
    with pytest.raises(ValueError, match=match):
        fake_quantize(torch.randn(4, 64), name, block_size=block_size)


def test_mx_dimension_not_divisible_by_32():
    with pytest.raises(ValueError, match="block_size 32 must divide the last dimension"):
        fake_quantize(torch.randn(4, 48), "mxfp8_e4m3")


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mxfp4", "axis": 0}, "axis=0 is not supported"),
    ({"name": "int8", "axis": 0, "block_size": 32}, "not both"),
    ({"name": "mxfp4", "amax": 1.0}, "amax= is not accepted"),
    ({"name": "fp8_e4m3", "symmetric": False}, "integer formats only"),
    ({"name": "fp8_e4m3", "axis": 2}, "axis 2 is out of range"),
    ({"name": "fp8_e4m3", "axis": 0, "amax": torch.ones(3)}, "must hold 1 or 4 values"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fake_quantize(torch.randn(4, 64), **kwargs)


def test_integer_input_rejected():
    with pytest.raises(ValueError, match="floating-point tensor"):
        fake_quantize(torch.ones(4, 32, dtype=torch.int32), "fp8_e4m3")


# Gaussian data, theory: a float format with m mantissa bits has a relative rounding error
# of about 2^-(m+1) uniform, i.e. SQNR ~ 6.02 m + 10.8 dB for values in the normal range
# (E4M3 ~ 29 dB, E5M2 ~ 23 dB, E2M1 with block scaling ~ 15-20 dB); INT8 blocks ~ 40 dB.
@pytest.mark.parametrize("name, block_size, low, high", [
    ("fp8_e4m3", None, 28, 34),
    ("fp8_e5m2", None, 22, 28),
    ("mxfp8_e4m3", None, 28, 34),
    ("mxfp6_e2m3", None, 27, 33),
    ("mxfp6_e3m2", None, 22, 28),
    ("mxfp4", None, 14, 20),
    ("nvfp4", None, 17, 23),
    ("mxint8", None, 35, 42),
    ("int8", 32, 40, 48),
    ("int4", 32, 15, 21),
])
def test_sqnr_on_gaussian_matches_theory(name, block_size, low, high):
    x = make_data("gaussian", (64, 1024), seed=1)
    sqnr = qsnr_db(x, fake_quantize(x, name, block_size=block_size))
    assert low <= sqnr <= high, f"{name}: {sqnr:.2f} dB"


def test_sqnr_ordering_and_lossless_zero():
    x = make_data("gaussian", (64, 1024), seed=2)
    sqnr = {name: qsnr_db(x, fake_quantize(x, name)) for name in ["mxfp4", "nvfp4", "mxfp8_e4m3"]}
    assert sqnr["mxfp4"] < sqnr["nvfp4"] < sqnr["mxfp8_e4m3"]
    zeros = torch.zeros(4, 32)
    for name in FLOAT_NAMES:
        assert torch.equal(fake_quantize(zeros, name), zeros)
    assert math.isinf(qsnr_db(torch.ones(2, 32), fake_quantize(torch.ones(2, 32), "mxfp4")))
