"""Quantizer, observers, profiler and analysis across the number formats: float codes,
element grids, state_dict round trips, bits per element, FP8 clip searches, analysis views."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from quantlib import analysis as QA
from quantlib.bit_type import BitType
from quantlib.errors import ConfigError
from quantlib.formats import fake_quantize
from quantlib.formats.grid import codes_to_values, nonnegative_grid, values_to_codes
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import Quantizer
from tests.quantlib.formats.data import make_data

BLOCK_FORMATS = [("mxfp4", 32), ("nvfp4", 16), ("mxfp8_e4m3", 32), ("mxfp6_e3m2", 32),
                 ("mxint8", 32), ("fp8_e4m3", 64), ("int4", 128)]


def config(name, mode="block_wise", block=None, observer="MinmaxObserver", method="Uniform"):
    bit_type = BitType(4, True) if name == "int4" else BitType(name=name)
    return QuantConfig(mode, bit_type, observer, method, block_size=block)


def calibrated_layer(cfg, out=128, inp=256, act=True, seed=0, out_cfg=None):
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(inp, out)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(out, inp, generator=gen) / inp**0.5)
    layer = QuantLinear(linear, out_cfg or cfg, cfg, "t", act_config=cfg if act else None)
    for _ in range(2):
        layer.calibration(torch.randn(4, inp, generator=gen))
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    layer(torch.randn(4, inp, generator=gen))
    return layer


@pytest.mark.parametrize("name", ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "fp8_e4m3", "fp8_e5m2",
                                  "mxint8"])
def test_codes_are_signed_grid_indices(name):
    spec = BitType(name=name).format
    grid = nonnegative_grid(spec)
    values = torch.cat([-grid.flip(0), grid])
    codes = values_to_codes(values, spec)
    n = grid.numel()
    expected = torch.cat([-torch.arange(n - 1, -1, -1), torch.arange(n)]).int()
    assert torch.equal(codes, expected)
    assert torch.equal(codes_to_values(codes, spec), values.abs() * codes.sign())
    assert torch.all(grid[1:] > grid[:-1]) and float(grid[-1]) == spec.max_finite


def test_e2m1_grid_and_element_levels():
    q = Quantizer(BitType(name="mxfp4"), block_size=32)
    assert q.element_levels().tolist() == [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2,
                                           3, 4, 6]
    assert Quantizer(BitType(4, True)).element_levels().tolist() == list(range(-8, 8))


@pytest.mark.parametrize(("name", "block"), BLOCK_FORMATS, ids=[n for n, _ in BLOCK_FORMATS])
def test_quantizer_api_per_block(name, block):
    layer = calibrated_layer(config(name, block=block))
    q = layer.weight_quantizer
    w = layer.weight
    assert torch.equal(q(w), q.dequantize(q.quant(w)))
    assert torch.equal(q(w), layer.dequant_weight)
    lo, hi = q.clip_range()
    assert lo.shape == q.scale.shape == (128, 256 // block)
    assert torch.all(layer.dequant_weight.reshape(128, -1, block) <= hi.unsqueeze(-1))
    levels = q.levels(3)
    assert levels.numel() == q.bit_type.num_levels and torch.all(levels[1:] > levels[:-1])
    assert not q.clipped_mask(w).any() or name.startswith("mx")  # MX floors its scale
    if name == "nvfp4":
        assert layer.weight_tensor_scale.dim() == 0
        assert float(layer.weight_tensor_scale) == pytest.approx(float(w.abs().max()) / 2688)


@pytest.mark.parametrize(("name", "block"), BLOCK_FORMATS, ids=[n for n, _ in BLOCK_FORMATS])
def test_state_dict_round_trip(name, block):
    layer = calibrated_layer(config(name, block=block))
    fresh = QuantLinear(nn.Linear(256, 128), layer.out_config, layer.weight_config, "t",
                        act_config=layer.act_config)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.quant_weight, layer.quant_weight)
    assert torch.equal(fresh.dequant_weight, layer.dequant_weight)
    assert torch.equal(fresh.output_scaler, layer.output_scaler)


def test_state_dict_refuses_codes_outside_the_float_range():
    layer = calibrated_layer(config("mxfp4"), act=False)
    state = layer.state_dict()
    state["quant_weight"] = state["quant_weight"].clone()
    state["quant_weight"][0, 0] = 8
    with pytest.raises(ValueError, match=r"mxfp4 range \[-7, 7\]"):
        QuantLinear(nn.Linear(256, 128), layer.out_config, layer.weight_config,
                    "t").load_state_dict(state)


@pytest.mark.parametrize(("name", "block", "method", "bits"), [
    ("mxfp4", 32, "Uniform", 4.25), ("int4", 128, "Uniform", 4.25),
    ("int4", 128, "Affine", 4 + 36 / 128), ("nvfp4", 16, "Uniform", 4.5 + 32 / (128 * 256)),
    ("mxfp8_e4m3", 32, "Uniform", 8.25), ("fp8_e4m3", 64, "Uniform", 8.5),
], ids=["mxfp4", "int4-g128", "int4-g128-affine", "nvfp4", "mxfp8", "fp8-g64"])
def test_bits_per_element_include_the_scales(name, block, method, bits):
    layer = calibrated_layer(config(name, block=block, method=method), act=False)
    memory = layer.get_profiling_results()["weight"]["memory"]
    assert memory["bits_per_element"] == pytest.approx(bits)
    assert memory["quantized_bytes"] + memory["qparam_bytes"] == pytest.approx(
        bits * 128 * 256 / 8, abs=1)


def test_block_size_must_divide_the_dimension():
    with pytest.raises(ConfigError, match=r"96 does not divide .* \(256\).* 2, 4, 8, 16, 32"):
        QuantLinear(nn.Linear(256, 128), QuantConfig(), config("int4", block=96), "t")


@pytest.mark.parametrize("observer", ["PercentileObserver", "OmseObserver"])
@pytest.mark.parametrize("mode", ["layer_wise", "channel_wise"])
def test_fp8_clip_searches_clip(observer, mode):
    """With outliers, Percentile and OMSE pick amax below max|x|; the layer's grid is the
    FP8 grid at scale = clipped amax / 448, equal to fake_quantize with that amax."""
    x = make_data("outliers", (64, 512), seed=3)
    cfg = QuantConfig(mode, BitType(name="fp8_e4m3"), observer, percentile_alpha=0.999)
    layer = QuantLinear(nn.Linear(512, 64), QuantConfig(), cfg, "t")
    layer.weight.copy_(x)
    layer.quantize_weight()
    amax = layer.weight_scaler * 448
    full = x.abs().amax(dim=1) if mode == "channel_wise" else x.abs().amax().reshape(1)
    assert bool((amax < full).any())
    axis = 0 if mode == "channel_wise" else None
    expected = fake_quantize(x, "fp8_e4m3", axis=axis, amax=torch.maximum(
        -layer.weight_observer.compute_range()[0], layer.weight_observer.compute_range()[1]))
    assert torch.equal(layer.dequant_weight, expected)


def test_omse_fp8_beats_minmax_on_outliers():
    x = make_data("outliers", (1, 4096), seed=4)
    errors = {}
    for observer in ("MinmaxObserver", "OmseObserver"):
        cfg = QuantConfig("layer_wise", BitType(name="fp8_e5m2"), observer)
        layer = QuantLinear(nn.Linear(4096, 1), QuantConfig(), cfg, "t")
        layer.weight.copy_(x)
        layer.quantize_weight()
        errors[observer] = float((layer.dequant_weight - x).pow(2).sum())
    assert errors["OmseObserver"] <= errors["MinmaxObserver"]


@pytest.mark.parametrize(("name", "block"), BLOCK_FORMATS, ids=[n for n, _ in BLOCK_FORMATS])
def test_error_decomposition_adds_up(name, block):
    layer = calibrated_layer(config(name, block=block), act=False)
    q = layer.weight_quantizer
    out = QA.error_decomposition(layer.weight, q.scale, q.zero_point, q.bit_type, 0,
                                 block_size=block, tensor_scale=q.tensor_scale)
    total = float((layer.dequant_weight - layer.weight).double().pow(2).mean())
    assert out["total_mse"] == pytest.approx(total, rel=1e-9)
    assert out["clipping_mse"] + out["rounding_mse"] == pytest.approx(total, rel=1e-9)
    assert out["per_channel"]["total_mse"].shape == (128,)
    assert math.isnan(out["theoretical_rounding_mse"]) == q.bit_type.is_float


def test_error_decomposition_blocks_equal_channels_when_n_is_in_features():
    layer = calibrated_layer(config("int4", block=256), act=False, out_cfg=QuantConfig())
    q = layer.weight_quantizer
    blocks = QA.error_decomposition(layer.weight, q.scale, q.zero_point, q.bit_type,
                                    block_size=256)
    channels = QA.error_decomposition(layer.weight, q.scale.reshape(-1),
                                      q.zero_point.reshape(-1), q.bit_type)
    for key in ("total_mse", "clipping_mse", "rounding_mse", "theoretical_rounding_mse"):
        assert blocks[key] == pytest.approx(channels[key], rel=1e-12)


@pytest.mark.parametrize(("name", "x", "scale", "tensor_scale", "code", "deq"), [
    ("mxfp4", 2.6, 1.0, None, 5, 3.0),          # 2.6 -> nearest E2M1 value 3 (index 5)
    ("mxfp4", 2.5, 1.0, None, 4, 2.0),          # tie between 2 and 3 -> even mantissa: 2
    ("mxfp4", -9.0, 0.5, None, -7, -3.0),       # -18 saturates at -6
    ("fp8_e4m3", 1.0, 1 / 448, None, 126, 1.0),
    ("nvfp4", 1.0, 2.0, 0.25, 4, 1.0),          # x / (0.25 * 2) = 2 -> index 4
], ids=["mxfp4-round", "mxfp4-tie", "mxfp4-saturate", "fp8-top", "nvfp4"])
def test_follow_value_through_a_float_format(name, x, scale, tensor_scale, code, deq):
    bt = BitType(name=name)
    step = QA.follow_value(x, scale, 0, bt, tensor_scale=tensor_scale)
    assert step["code"] == code and step["dequantized"] == pytest.approx(deq)
    assert step["clamped"] == (name == "mxfp4" and x == -9.0)


def test_views_that_do_not_apply_say_so():
    x = torch.randn(8, 64)
    with pytest.raises(ValueError, match="clip-threshold curve does not apply to mxfp4"):
        QA.clip_threshold_curve(x, BitType(name="mxfp4"))
    curve = QA.clip_threshold_curve(x, BitType(name="fp8_e4m3"), num_points=20)
    assert torch.allclose(curve["clipping_mse"] + curve["rounding_mse"], curve["total_mse"])
    layer = calibrated_layer(config("mxfp4"), act=False)
    with pytest.raises(ValueError, match="fixed element width"):
        QA.sweep_bit_widths(layer, torch.randn(4, 256))


def test_bit_sweep_on_block_int_matches_a_rebuilt_layer():
    cfg4 = config("int4", block=32)
    layer = calibrated_layer(cfg4, act=False)
    eval_x = torch.randn(4, 256, generator=torch.Generator().manual_seed(9))
    sweep = QA.sweep_bit_widths(layer, eval_x, [3, 4])
    rebuilt = QuantLinear(nn.Linear(256, 128), config("int4", block=32),
                          QuantConfig("block_wise", BitType(3, True), block_size=32), "t")
    rebuilt.weight.copy_(layer.weight)
    rebuilt.quantize_weight()
    w_qsnr = 10 * math.log10(float(layer.weight.double().pow(2).sum())
                             / float((rebuilt.dequant_weight - layer.weight).double().pow(2).sum()))
    assert sweep["weight_qsnr"][0] == pytest.approx(w_qsnr)


def test_code_statistics_on_float_codes():
    layer = calibrated_layer(config("mxfp4"), act=False)
    stats = QA.code_statistics(layer.quant_weight, layer.weight_config.bit_type)
    assert stats["counts"].numel() == 15 and int(stats["counts"].sum()) == 128 * 256
    assert stats["codes"].tolist() == list(range(-7, 8))
