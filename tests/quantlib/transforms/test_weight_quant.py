"""The fixed-scale weight quantizer: RTN is bit-identical to quantlib.formats; bad formats are
refused with the valid choices."""

from __future__ import annotations

import pytest
import torch

from quantlib.errors import ConfigError
from quantlib.formats import fake_quantize
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer
from tests.quantlib.transforms.data import make_layer

CASES = [
    ("int4", "block", 128, True, {"block_size": 128}),
    ("int4", "block", 32, False, {"block_size": 32}),
    ("uint8", "channel", None, False, {"axis": 0}),
    ("int8", "channel", None, True, {"axis": 0}),
    ("int8", "tensor", None, True, {}),
    ("fp8_e4m3", "channel", None, True, {"axis": 0}),
    ("fp8_e5m2", "block", 64, True, {"block_size": 64}),
    ("mxfp4", "block", None, True, {}),
    ("mxfp6_e2m3", "block", 32, True, {}),
    ("mxint8", "block", None, True, {}),
    ("nvfp4", "block", None, True, {}),
]


@pytest.mark.parametrize("name,granularity,block,symmetric,kwargs", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{'sym' if c[3] else 'asym'}" for c in CASES])
def test_rtn_is_bit_identical_to_the_format_kernels(name, granularity, block, symmetric,
                                                    kwargs):
    weight, _, _, _ = make_layer(48, 256, 8, seed=1)
    weight[:, 5] *= 40.0
    fmt = WeightFormat(name, granularity, block, symmetric)
    ours = WeightQuantizer(fmt, weight).quantize_all(weight)
    assert torch.equal(ours, fake_quantize(weight, name, symmetric=symmetric, **kwargs))


def test_group_then_column_equals_rtn():
    weight, _, _, _ = make_layer(16, 64, 8, seed=2)
    q = WeightQuantizer(WeightFormat("nvfp4", "block"), weight)
    params = q.group_params(weight[:, 16:32])
    column = q.quantize(weight[:, 20:21], params)
    assert torch.equal(column, q.quantize_all(weight)[:, 20:21])


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "fp32"}, "not a weight format; valid formats: int2..int16.*mxfp4.*nvfp4"),
    ({"name": "int4", "granularity": "row"}, "choose one of tensor, channel, block"),
    ({"name": "mxfp4", "granularity": "channel"}, "granularity must be block"),
    ({"name": "nvfp4", "block_size": 32}, "nvfp4 needs block_size 16"),
    ({"name": "int4", "block_size": 0}, "integer from 1 to 65536"),
    ({"name": "fp8_e4m3", "symmetric": False}, "symmetric only"),
], ids=["unknown-name", "bad-granularity", "mx-per-channel", "nvfp4-block32", "block0",
        "fp8-affine"])
def test_formats_that_do_not_make_sense_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        WeightFormat(**kwargs)


def test_from_quant_settings_maps_the_config_words():
    fmt = WeightFormat.from_quant_settings("int4", "block_wise", 64, "Affine")
    assert fmt == WeightFormat("int4", "block", 64, False)
    assert WeightFormat.from_quant_settings("int8", "channel_wise").granularity == "channel"
    with pytest.raises(ConfigError, match="layer_wise, channel_wise, block_wise"):
        WeightFormat.from_quant_settings("int8", "row_wise")
