"""AWQ: never worse than RTN on the calibration data; picks the grid's best alpha."""

from __future__ import annotations

import threading

import pytest
import torch

from quantlib.transforms.awq import awq_scales, awq_search
from quantlib.transforms.control import TransformCancelled
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer
from tests.quantlib.transforms.data import make_layer, output_mse

FORMATS = [
    pytest.param(WeightFormat("int4", "channel"), id="int4-channel"),
    pytest.param(WeightFormat("int4", "block", 32), id="int4-g32"),
    pytest.param(WeightFormat("int3", "block", 128, symmetric=False), id="int3-g128-affine"),
    pytest.param(WeightFormat("int8", "tensor"), id="int8-tensor"),
    pytest.param(WeightFormat("mxfp4", "block"), id="mxfp4"),
    pytest.param(WeightFormat("nvfp4", "block"), id="nvfp4"),
    pytest.param(WeightFormat("fp8_e4m3", "channel"), id="fp8-channel"),
]


def effective_weight(result):
    return result.quantized_weight / result.scales


@pytest.mark.parametrize("tokens", [64, 1024], ids=["few-tokens", "gram-path"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_awq_is_never_worse_than_rtn_on_calibration_data(fmt, tokens):
    weight, _, calib, _ = make_layer(64, 256, tokens, seed=1)
    result = awq_search(weight, calib, fmt)
    rtn = WeightQuantizer(fmt, weight).quantize_all(weight)
    awq_mse = output_mse(calib, weight, effective_weight(result))
    assert awq_mse <= output_mse(calib, weight, rtn) * (1 + 1e-6)
    assert result.mse[0] == pytest.approx(output_mse(calib, weight, rtn), rel=1e-4)
    assert float(result.mse.min()) == pytest.approx(awq_mse, rel=1e-4)


def test_awq_helps_int4_with_outlier_channels():
    weight, _, calib, held_out = make_layer(128, 256, 1024, seed=2)
    fmt = WeightFormat("int4", "block", 128)
    result = awq_search(weight, calib, fmt)
    rtn = WeightQuantizer(fmt, weight).quantize_all(weight)
    assert result.alpha > 0
    assert output_mse(held_out, weight, effective_weight(result)) < output_mse(
        held_out, weight, rtn)


def test_grid_and_scale_normalisation():
    weight, _, calib, _ = make_layer(16, 64, 128, seed=3)
    result = awq_search(weight, calib, WeightFormat("int4", "channel"), grid=20)
    assert torch.allclose(result.alphas, torch.arange(20) / 20)
    s = awq_scales(calib.abs().mean(0), 0.5)
    assert float(s.max() * s.min()) == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(awq_scales(calib.abs().mean(0), 0.0), torch.ones(64))


def test_progress_and_cancellation():
    weight, _, calib, _ = make_layer(16, 64, 128, seed=4)
    seen = []
    awq_search(weight, calib, WeightFormat("int4", "channel"), progress=seen.append)
    assert seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))
    stop = threading.Event()
    stop.set()
    with pytest.raises(TransformCancelled, match="AWQ cancelled"):
        awq_search(weight, calib, WeightFormat("int4", "channel"), cancel=stop)
