"""apply_transform: the one entry point, end to end on one layer."""

from __future__ import annotations

import threading

import pytest
import torch

from quantlib.errors import ConfigError
from quantlib.transforms import (
    TransformCancelled,
    TransformConfig,
    WeightFormat,
    WeightQuantizer,
    apply_transform,
)
from tests.quantlib.transforms.data import make_layer, relative_error

INT4_G128 = WeightFormat("int4", "block", 128)

IDENTITIES = [
    pytest.param({}, id="nothing"),
    pytest.param({"smoothquant": {"alpha": 0.5}}, id="smoothquant"),
    pytest.param({"rotation": "hadamard", "seed": 5}, id="hadamard"),
    pytest.param({"smoothquant": {"alpha": 0.8}, "rotation": "hadamard"}, id="both"),
    pytest.param({"rotation": "hadamard", "weight_algorithm": "awq"}, id="hadamard-awq"),
]


@pytest.mark.parametrize("body", IDENTITIES)
def test_transformed_fp32_layer_equals_the_original(body):
    weight, bias, calib, held_out = make_layer(96, 384, 256, seed=1)
    result = apply_transform(weight, bias, calib, TransformConfig.from_dict(body), INT4_G128)
    expected = held_out @ weight.T + bias
    assert relative_error(result.output(held_out, quantized=False), expected) < 1e-5
    assert result.quantized_weight is not None and result.timings["total"] >= 0


@pytest.mark.parametrize("algorithm", ["awq", "gptq"])
@pytest.mark.parametrize("fmt", [INT4_G128, WeightFormat("mxfp4", "block"),
                                 WeightFormat("nvfp4", "block")], ids=["int4-g128", "mxfp4",
                                                                       "nvfp4"])
def test_weight_algorithms_beat_rtn_on_held_out_outputs(algorithm, fmt):
    weight, bias, calib, held_out = make_layer(128, 256, 1024, seed=2)
    cfg = TransformConfig.from_dict({"weight_algorithm": algorithm})
    result = apply_transform(weight, bias, calib, cfg, fmt)
    rtn = held_out @ WeightQuantizer(fmt, weight).quantize_all(weight).T + bias
    y = held_out @ weight.T + bias
    better = ((result.output(held_out) - y) ** 2).mean()
    assert better < ((rtn - y) ** 2).mean()


def test_rtn_result_is_plain_rtn_and_records_the_pieces():
    weight, bias, calib, _ = make_layer(32, 128, 64, seed=3)
    plain = apply_transform(weight, bias, calib, TransformConfig(), INT4_G128)
    assert torch.equal(plain.quantized_weight,
                       WeightQuantizer(INT4_G128, weight).quantize_all(weight))
    assert plain.smooth_scale is None and plain.rotation is None and plain.awq_scale is None
    cfg = TransformConfig.from_dict({"smoothquant": {"alpha": 0.5}, "weight_algorithm": "awq"})
    full = apply_transform(weight, bias, calib, cfg, INT4_G128)
    assert full.smooth_scale.shape == (128,) and full.awq_scale.shape == (128,)
    assert full.smoothquant_alpha == 0.5 and 0 <= full.awq_alpha < 1
    assert set(full.timings) == {"smoothquant", "awq", "total"}


def test_progress_is_monotone_to_one_and_cancel_stops():
    weight, bias, calib, _ = make_layer(32, 256, 256, seed=4)
    cfg = TransformConfig.from_dict({"weight_algorithm": "gptq", "gptq": {"block": 32}})
    seen = []
    apply_transform(weight, bias, calib, cfg, INT4_G128, progress=seen.append)
    assert seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))
    stop = threading.Event()
    with pytest.raises(TransformCancelled):
        apply_transform(weight, bias, calib, cfg, INT4_G128,
                        progress=lambda f: stop.set() if f > 0.3 else None, cancel=stop)


def test_bad_inputs_are_refused_clearly():
    weight, bias, calib, _ = make_layer(16, 64, 32, seed=5)
    with pytest.raises(ConfigError, match="gptq needs a quantized weight format"):
        apply_transform(weight, bias, calib, TransformConfig(weight_algorithm="gptq"))
    bad = calib.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="fc1: the calibration input contains NaN"):
        apply_transform(weight, bias, bad, TransformConfig(), layer_name="fc1")
    with pytest.raises(ValueError, match=r"must be \[\.\.\., 64\]"):
        apply_transform(weight, bias, calib[:, :10], TransformConfig())
    odd = torch.randn(8, 100)
    with pytest.raises(ValueError, match="size 100: supported sizes"):
        apply_transform(odd, None, torch.randn(4, 100), TransformConfig(rotation="hadamard"))
