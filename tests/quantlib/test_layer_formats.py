"""QuantLinear in every number format x granularity, bit-exact against torchao 0.18 on the
weight, the output and the input (torchao is a test dependency only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantlib.bit_type import BitType
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from tests.quantlib.formats.data import make_data
from tests.quantlib.formats.reference import (
    FP8_DTYPES,
    _choose_scale_float8,
    _dequantize_affine_float8,
    _quantize_affine_float8,
    assert_equal_or_zero_where_reference_nan,
    fp8_reference,
    mx_reference,
    nvfp4_reference,
)

primitives = pytest.importorskip("torchao.quantization.quant_primitives")
MappingType = primitives.MappingType
choose_qparams_affine = primitives.choose_qparams_affine
quantize_affine, dequantize_affine = primitives.quantize_affine, primitives.dequantize_affine

OUT, IN = 128, 256
MX_NAMES = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4"]
#: (format, calibration_mode, block_size, method)
CASES = ([(n, m, b, "Uniform") for n in FP8_DTYPES
          for m, b in (("layer_wise", None), ("channel_wise", None), ("block_wise", 32),
                       ("block_wise", 128))]
         + [(n, "block_wise", 32, "Uniform") for n in MX_NAMES]
         + [("nvfp4", "block_wise", 16, "Uniform")]
         + [(n, "block_wise", b, m) for n in ("int4", "int8", "uint8") for b in (32, 128)
            for m in ("Uniform", "Affine")])
CASE_IDS = [f"{n}-{m}{'' if b is None else b}-{q}" for n, m, b, q in CASES]
WEIGHT_DATA = ["gaussian", "ties", "zeros", "wide", "outliers"]


def bit_type_of(name: str) -> BitType:
    if name.startswith(("int", "uint")):
        return BitType(int(name.lstrip("uint")), not name.startswith("u"))
    return BitType(name=name)


def config(name, mode, block, method="Uniform") -> QuantConfig:
    return QuantConfig(mode, bit_type_of(name), "MinmaxObserver", method, block_size=block)


def int_reference(x, name, block, method):
    """torchao's choose_qparams_affine -> quantize_affine -> dequantize_affine, (1, ..., N)."""
    bt = bit_type_of(name)
    mapping = MappingType.SYMMETRIC if method == "Uniform" else MappingType.ASYMMETRIC
    size = (1,) * (x.dim() - 1) + (block,)
    scale, zero = choose_qparams_affine(x, mapping, size, torch.int32, bt.qmin, bt.qmax,
                                        torch.finfo(torch.float32).eps, torch.float32,
                                        torch.int32)
    codes = quantize_affine(x, size, scale, zero, torch.int32, bt.qmin, bt.qmax)
    return dequantize_affine(codes, size, scale, zero, torch.int32, bt.qmin, bt.qmax)


def static_fp8_reference(x, name, calibration, axis):
    """FP8 with the scale torchao chooses on all calibration data (per tensor, or per
    channel along the last axis), applied to ``x``."""
    dtype = FP8_DTYPES[name]
    sizes = list(calibration.shape) if axis is None else [calibration.shape[0], 1]
    scale = _choose_scale_float8(calibration, sizes, dtype)
    rows = x.reshape(-1, x.shape[-1])
    codes = _quantize_affine_float8(rows, scale, dtype)
    return _dequantize_affine_float8(codes, scale, x.dtype).reshape(x.shape)


def reference(x, name, mode, block, method, calibration=None):
    """torchao's result for ``x``: weights (``calibration`` None) or activations, whose
    block scales are per token and whose static scales come from ``calibration``."""
    if name in FP8_DTYPES:
        if mode == "block_wise":
            return fp8_reference(x, name, block_size=block)
        if calibration is None:
            return fp8_reference(x, name, axis=0 if mode == "channel_wise" else None)
        return static_fp8_reference(x, name, calibration,
                                    -1 if mode == "channel_wise" else None)
    if name in MX_NAMES:
        return mx_reference(x, name)
    if name == "nvfp4":
        amax = None if calibration is None else calibration.abs().amax()
        return nvfp4_reference(x, amax)
    return int_reference(x, name, block, method)


def check(ours, ref, x):
    assert_equal_or_zero_where_reference_nan(ours, ref, x)


def make_layer(weight, cfg, act_cfg=None, bias=True, out_cfg=None):
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias:
            linear.bias.copy_(torch.linspace(-0.5, 0.5, weight.shape[0]))
    return QuantLinear(linear, out_cfg or cfg, cfg, "fmt", act_config=act_cfg)


@pytest.mark.parametrize("distribution", WEIGHT_DATA)
@pytest.mark.parametrize("name,mode,block,method", CASES, ids=CASE_IDS)
def test_weight_matches_torchao(name, mode, block, method, distribution):
    w = make_data(distribution, (OUT, IN), seed=1)
    layer = make_layer(w, config(name, mode, block, method))
    check(layer.dequant_weight, reference(w, name, mode, block, method), w)
    assert layer.quant_weight.dtype == torch.int32
    bt = layer.weight_config.bit_type
    assert bt.qmin <= int(layer.quant_weight.min()) <= int(layer.quant_weight.max()) <= bt.qmax
    if mode == "block_wise":
        assert tuple(layer.weight_scaler.shape) == (OUT, IN // block)
        assert tuple(layer.weight_zero.shape) == (OUT, IN // block)


@pytest.mark.parametrize("distribution", ["gaussian", "ties", "zeros", "outliers"])
@pytest.mark.parametrize("name,mode,block,method", CASES, ids=CASE_IDS)
def test_output_and_input_match_torchao(name, mode, block, method, distribution):
    """Calibrate on half-range batches, then run full-range data: static FP8 scales and
    NVFP4's tensor scale saturate; block scales are per token, from each tensor."""
    w = make_data("gaussian", (OUT, IN), seed=2) / IN**0.5
    cfg = config(name, mode, block, method)
    layer = make_layer(w, cfg, act_cfg=cfg)
    batches = [0.5 * make_data("gaussian", (6, IN), seed=s) for s in (3, 4)]
    for batch in batches:
        layer.calibration(batch)
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    x = make_data(distribution, (2, 5, IN), seed=5)
    y = layer(x)

    cal_x = torch.cat(batches)
    x_ref = reference(x, name, mode, block, method, calibration=cal_x)
    check(layer.input_quantizer(x), x_ref, x)
    w_ref = reference(w, name, mode, block, method)
    w_ref = torch.where(torch.isnan(w_ref), 0.0, w_ref)
    x_ref = torch.where(torch.isnan(x_ref), 0.0, x_ref)
    cal_y = torch.cat([F.linear(batch, w, layer.bias) for batch in batches])  # as calibrated
    y_fp32 = F.linear(x_ref, w_ref, layer.bias)
    check(y, reference(y_fp32, name, mode, block, method, calibration=cal_y), y_fp32)
    if mode == "block_wise":
        assert tuple(layer.output_scaler.shape) == (2, 5, OUT // block)


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
def test_block_equal_to_in_features_is_todays_per_channel_weight(method):
    w = make_data("laplace", (OUT, IN), seed=6)
    blocks = make_layer(w, config("int4", "block_wise", IN, method), out_cfg=QuantConfig())
    channels = make_layer(w, QuantConfig("channel_wise", BitType(4, True),
                                         quantization_method=method))
    assert torch.equal(blocks.dequant_weight, channels.dequant_weight)
    assert torch.equal(blocks.quant_weight, channels.quant_weight)
    assert torch.equal(blocks.weight_scaler.reshape(-1), channels.weight_scaler)
    check(blocks.dequant_weight, int_reference(w, "int4", IN, method), w)


def test_mxint8_layer_hand_worked_block():
    """OCP MX v1.0: block amax 3 -> X = 2^1; k = round_half_even(x / 2 * 64), |k| <= 127."""
    w = torch.zeros(1, 32)
    w[0, :5] = torch.tensor([3.0, -1.0, 0.015625, 0.0234375, -3.99])
    layer = make_layer(w, config("mxint8", "block_wise", None), bias=False,
                       out_cfg=QuantConfig())
    assert float(layer.weight_scaler[0, 0]) == 2.0
    assert layer.quant_weight[0, :5].tolist() == [96, -32, 0, 1, -128 + 1]
    expected = torch.tensor([3.0, -1.0, 0.0, 0.03125, -127 / 32])
    assert torch.equal(layer.dequant_weight[0, :5], expected)
