"""Analyses: sweeps equal direct builds, decompositions add up, the one-value chain is exact."""

import dataclasses

import pytest
import torch
from torch import nn

from quantlib.analysis import (
    clip_threshold_curve,
    code_statistics,
    error_decomposition,
    follow_value,
    sweep_bit_widths,
)
from quantlib.bit_type import BitType
from quantlib.observers import build_observer
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.quantizers import calculate_qparams, fake_quantize


def build(weight_cfg, out_cfg, linear, batches):
    layer = QuantLinear(linear, out_cfg, weight_cfg, "sweep")
    for b in batches:
        layer.calibration(b)
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    return layer


def at_bits(cfg: QuantConfig, bits: int) -> QuantConfig:
    return dataclasses.replace(cfg, bit_type=BitType(bits, cfg.bit_type.signed))


@pytest.mark.parametrize("observer", OBSERVER_TYPES)
def test_sweep_equals_direct_builds(observer):
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(32, 64, generator=gen) for _ in range(3)]
    eval_x = torch.randn(40, 64, generator=gen)
    w_cfg = QuantConfig(calibration_mode="channel_wise", observer_type=observer, kl_bins=256)
    o_cfg = QuantConfig(observer_type=observer, quantization_method="Affine", kl_bins=256)
    sweep = sweep_bit_widths(build(w_cfg, o_cfg, linear, batches), eval_x, range(2, 9))
    for i, bits in enumerate(sweep["bits"]):
        direct = build(at_bits(w_cfg, bits), at_bits(o_cfg, bits), linear, batches)
        direct(eval_x)
        res = direct.get_profiling_results()
        assert sweep["weight_qsnr"][i] == pytest.approx(res["weight"]["statistics"]["qsnr"],
                                                        abs=0.05)
        assert sweep["output_qsnr"][i] == pytest.approx(res["output"]["statistics"]["qsnr"],
                                                        abs=0.05)


@pytest.mark.parametrize("mode", ["layer_wise", "channel_wise"])
def test_error_decomposition_adds_up(mode):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 300, generator=gen)
    x[3, 5] = 40.0
    cfg = QuantConfig(calibration_mode=mode, observer_type="PercentileObserver",
                      percentile_alpha=0.99, bit_type=BitType(4, True))
    obs = build_observer(cfg)
    obs.update(x)
    scale, zero = obs.get_quantization_params()
    d = error_decomposition(x, scale, zero, cfg.bit_type, axis=0)
    assert d["clipping_mse"] + d["rounding_mse"] == pytest.approx(d["total_mse"], rel=1e-12)
    direct = (fake_quantize(x, scale, zero, cfg.bit_type, 0) - x).double().pow(2).mean()
    assert d["total_mse"] == pytest.approx(float(direct), rel=1e-9)
    pc = d["per_channel"]
    torch.testing.assert_close(pc["clipping_mse"] + pc["rounding_mse"], pc["total_mse"])
    assert d["clipping_mse"] > 0 and d["clip_fraction"] > 0


def test_rounding_only_error_matches_delta_squared_over_12():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(1_000_000, generator=gen) * 2 - 1
    bt = BitType(6, True)
    scale, zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bt, False)
    d = error_decomposition(x, scale, zero, bt)
    assert d["clipping_mse"] == 0.0
    assert d["rounding_mse"] == pytest.approx(d["theoretical_rounding_mse"], rel=0.02)
    assert d["rmse_over_scale"] == pytest.approx(12 ** -0.5, rel=0.01)


@pytest.mark.parametrize("symmetric", [True, False], ids=["Uniform", "Affine"])
@pytest.mark.parametrize("n", [5000, 200_000], ids=["exact", "histogram"])
def test_clip_curve_parts_add_up_and_match_direct_quantization(symmetric, n):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(n, generator=gen) + (0 if symmetric else 1.0)
    bt = BitType(4, True)
    curve = clip_threshold_curve(x, bt, symmetric, num_points=50)
    torch.testing.assert_close(curve["clipping_mse"] + curve["rounding_mse"],
                               curve["total_mse"])
    assert curve["thresholds"][-1] == pytest.approx(float(x.abs().max()))
    # spot-check three points against direct fake quantization
    for i in (5, 25, 49):
        t = float(curve["thresholds"][i])
        lo = -t if symmetric else max(float(x.min()), -t)
        hi = t if symmetric else min(float(x.max()), t)
        s, z = calculate_qparams(torch.tensor([lo]), torch.tensor([hi]), bt, symmetric)
        mse = float((fake_quantize(x, s, z, bt) - x).double().pow(2).mean())
        tol = 1e-9 if n == 5000 else 0.02
        assert float(curve["total_mse"][i]) == pytest.approx(mse, rel=tol)


def test_clip_curve_minimum_is_where_omse_clips():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(50_000, generator=gen)
    bt = BitType(4, True)
    cfg = QuantConfig(observer_type="OmseObserver", bit_type=bt, omse_steps=200)
    obs = build_observer(cfg)
    obs.update(x)
    _, hi = obs.compute_range()
    lo_, _ = obs.compute_range()
    omse_t = max(float(hi), -float(lo_))
    curve = clip_threshold_curve(x, bt, True, num_points=200)
    best_t = float(curve["thresholds"][int(torch.argmin(curve["total_mse"]))])
    assert omse_t == pytest.approx(best_t, rel=0.03)


def test_code_statistics():
    bt = BitType(3, True)
    codes = torch.tensor([-4, -4, 0, 3, 3, 3, 3, 3])
    stats = code_statistics(codes, bt)
    assert stats["counts"].tolist() == [2, 0, 0, 0, 1, 0, 0, 5]
    assert stats["used_fraction"] == 3 / 8
    p = torch.tensor([2, 1, 5]) / 8
    assert stats["effective_bits"] == pytest.approx(float(-(p * p.log2()).sum()))


@pytest.mark.parametrize("x", [0.37, -5.0, 0.5, 123.0], ids=["inside", "low", "tie", "clipped"])
def test_follow_value_reproduces_the_quantizer(x):
    bt = BitType(8, False)
    scale, zero = torch.tensor([0.25]), torch.tensor([100])
    chain = follow_value(x, 0.25, 100, bt)
    expected = fake_quantize(torch.tensor([x]), scale, zero, bt)
    assert chain["dequantized"] == float(expected)
    assert chain["error"] == pytest.approx(float(expected) - x)
    assert chain["clamped"] == (x == 123.0)
