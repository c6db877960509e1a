"""Whole-model quantization of the digits MLP: accuracy, the per-layer table and its meaning."""

import math

import pytest
import torch
from torch import nn

from explorer.core.model_quant import (
    capture_linear_inputs,
    layer_sensitivity,
    linear_layer_names,
    quantize_model,
    top1_accuracy,
)
from quantlib.bit_type import BitType
from quantlib.profiler import qsnr_db
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

BATCH = 256


def make_configs(bits=8, observer="MinmaxObserver", activation=False):
    """Per-channel weight, per-tensor output (and input), signed symmetric ``bits``."""
    def cfg(mode):
        return QuantConfig(calibration_mode=mode, bit_type=BitType(bits, True),
                           observer_type=observer)
    return {"weight": cfg("channel_wise"), "output": cfg("layer_wise"),
            "activation": cfg("layer_wise") if activation else None}


@pytest.fixture(scope="module")
def w8(digits):
    return quantize_model(digits.model, make_configs(8), digits.train_x, digits.test_x,
                          digits.test_y)


def direct_build(digits, name, configs):
    """The reference: one QuantLinear on the layer's captured fp32 inputs, same batches."""
    calib = digits.layer_inputs(name, split="train")
    evals = digits.layer_inputs(name, split="test")
    layer = QuantLinear(digits.linear(name), configs["output"], configs["weight"],
                        layer_name=name, act_config=configs["activation"])
    for start in range(0, calib.shape[0], BATCH):
        layer.calibration(calib[start:start + BATCH])
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    for start in range(0, evals.shape[0], BATCH):
        layer(evals[start:start + BATCH])
    return layer


def test_8bit_minmax_keeps_accuracy_within_one_point(digits, w8):
    assert w8.fp32_accuracy == digits.accuracy() >= 0.95
    assert abs(w8.accuracy_drop) <= 0.01
    assert w8.num_calibration_rows == 1437 and w8.num_eval_rows == 360
    assert [row.name for row in w8.layers] == ["fc1", "fc2", "fc3"]
    assert [row.shape for row in w8.layers] == [(256, 64), (128, 256), (10, 128)]
    for row in w8.layers:
        assert row.weight_qsnr > 35 and row.output_qsnr > 30
        assert 0.0 <= row.output_clip_fraction <= 1.0 and row.weight_clip_fraction == 0.0
        assert row.input_qsnr is None


def test_quantized_model_uses_quantlinear_and_leaves_the_original_alone(digits, w8):
    assert all(isinstance(w8.quant_layer(n), QuantLinear) for n in digits.linear_names)
    assert all(w8.quant_layer(n).mode == "quantized" for n in digits.linear_names)
    assert all(type(digits.model.get_submodule(n)) is nn.Linear for n in digits.linear_names)
    assert all(not m._forward_hooks and not m._forward_pre_hooks
               for m in digits.model.modules())
    assert top1_accuracy(w8.model, digits.test_x, digits.test_y) == w8.quantized_accuracy


@pytest.mark.parametrize("name", ["fc1", "fc2", "fc3"])
def test_single_layer_row_matches_a_direct_quantlinear_build(digits, name):
    configs = make_configs(6)
    result = quantize_model(digits.model, configs, digits.train_x, digits.test_x,
                            digits.test_y, layers=[name])
    (row,) = result.layers
    ref = direct_build(digits, name, configs)
    got = result.quant_layer(name)
    assert torch.equal(got.output_scaler, ref.output_scaler)
    assert torch.equal(got.weight_scaler, ref.weight_scaler)
    stats = ref.get_profiling_results()
    assert row.weight_qsnr == stats["weight"]["statistics"]["qsnr"]
    assert row.output_qsnr == pytest.approx(stats["output"]["statistics"]["qsnr"], rel=1e-9)
    assert row.output_clip_fraction == stats["output"]["statistics"]["clip_fraction"]
    # only this layer is quantized, so its input is fp32 and local == accumulated error
    assert row.cumulative_output_qsnr == pytest.approx(row.output_qsnr, rel=1e-6)


def test_full_model_calibrates_every_layer_on_fp32_activations(digits):
    configs = make_configs(4)
    result = quantize_model(digits.model, configs, digits.train_x, digits.test_x,
                            digits.test_y)
    for name in digits.linear_names:
        ref = direct_build(digits, name, configs)
        assert torch.equal(result.quant_layer(name).output_scaler, ref.output_scaler), name
    first, second = result.layers[0], result.layers[1]
    ref1 = direct_build(digits, "fc1", configs).get_profiling_results()["output"]["statistics"]
    assert first.output_qsnr == pytest.approx(ref1["qsnr"], rel=1e-9)
    assert first.cumulative_output_qsnr == pytest.approx(first.output_qsnr, rel=1e-6)
    # downstream, the accumulated error exceeds what the layer adds on its own
    assert second.cumulative_output_qsnr < second.output_qsnr


def test_cumulative_qsnr_compares_with_the_fp32_model(digits, w8):
    fp32_out = capture_linear_inputs(digits.model, digits.test_x, ["fc3"])["fc3"]
    with torch.no_grad():
        fp32_logits = digits.model(digits.test_x)
        quant_logits = w8.model(digits.test_x)
    assert fp32_out.shape == (360, 128)
    noise = float(((quant_logits.double() - fp32_logits.double()) ** 2).sum())
    expected = qsnr_db(float((fp32_logits.double() ** 2).sum()), noise)
    assert w8.layers[2].cumulative_output_qsnr == pytest.approx(expected, rel=1e-9)


def test_fewer_bits_lose_more(digits, w8):
    w4 = quantize_model(digits.model, make_configs(4), digits.train_x, digits.test_x,
                        digits.test_y)
    for low, high in zip(w4.layers, w8.layers):
        assert low.weight_qsnr < high.weight_qsnr - 15
        assert low.output_qsnr < high.output_qsnr - 15


def test_activation_config_adds_input_columns(digits):
    result = quantize_model(digits.model, make_configs(8, activation=True), digits.train_x,
                            digits.test_x, digits.test_y)
    first = result.layers[0]
    assert first.input_qsnr is not None and first.input_qsnr > 30
    assert 0.0 <= first.input_clip_fraction <= 1.0
    assert set(result.table()[0]) >= {"name", "shape", "input_qsnr", "cumulative_output_qsnr"}
    assert result.table()[0]["shape"] == "256 x 64"


def test_profiling_is_forced_on_without_touching_the_configs(digits):
    configs = make_configs(8)
    configs["output"].enable_profiler = False
    result = quantize_model(digits.model, configs, digits.train_x[:256], digits.test_x,
                            digits.test_y, layers=["fc1"])
    assert math.isfinite(result.layers[0].output_qsnr)
    assert configs["output"].enable_profiler is False


def test_progress_runs_from_calibration_to_evaluation(digits):
    calls = []
    quantize_model(digits.model, make_configs(8), digits.train_x, digits.test_x, digits.test_y,
                   progress=lambda f, text: calls.append((f, text)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(calls) == math.ceil(1437 / BATCH) + math.ceil(360 / BATCH)
    assert calls[0][1].startswith("calibrating") and calls[-1][1].startswith("evaluating")


def test_layer_sensitivity_quantizes_one_layer_at_a_time(digits):
    configs = make_configs(3)
    sens = layer_sensitivity(digits.model, configs, digits.train_x, digits.test_x,
                             digits.test_y)
    assert list(sens) == ["fc1", "fc2", "fc3"]
    for name, accuracy in sens.items():
        one = quantize_model(digits.model, configs, digits.train_x, digits.test_x,
                             digits.test_y, layers=[name])
        assert accuracy == one.quantized_accuracy
    full = quantize_model(digits.model, configs, digits.train_x, digits.test_x, digits.test_y)
    assert full.quantized_accuracy <= max(sens.values())


@pytest.mark.parametrize("bits", [3, 8])
def test_sensitivity_reusing_the_full_run_equals_recalibrating(digits, bits):
    configs = make_configs(bits)
    args = (digits.model, configs, digits.train_x, digits.test_x, digits.test_y)
    full = quantize_model(*args)
    assert layer_sensitivity(*args, full=full) == layer_sensitivity(*args)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"layers": ["fc9"]}, ValueError, "fc1, fc2, fc3"),
    ({"layers": ["relu1"]}, ValueError, "not an nn.Linear"),
    ({"layers": []}, ValueError, "no layers"),
    ({"layers": "fc1"}, TypeError, "list of names"),
    ({"eval_y": torch.zeros(5, dtype=torch.long)}, ValueError, "eval_y"),
    ({"calib_x": torch.zeros(0, 64)}, ValueError, "calib_x"),
    ({"configs": {"weight": None}}, ValueError, "'output' and 'weight'"),
    ({"calib_x": torch.full((4, 64), float("nan"))}, ValueError, "NaN"),
], ids=["unknown-layer", "not-linear", "no-layers", "string-layers", "label-mismatch",
        "empty-calibration", "missing-config", "nan-calibration"])
def test_bad_arguments_raise_clear_errors(digits, kwargs, error, message):
    args = {"configs": make_configs(8), "calib_x": digits.train_x, "eval_x": digits.test_x,
            "eval_y": digits.test_y, **kwargs}
    with pytest.raises(error, match=message):
        quantize_model(digits.model, **args)


class Nested(nn.Module):
    """A toy model with dotted Linear names and a dropout (train mode must be restored)."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.block(x))


def test_nested_models_and_train_mode_are_handled():
    gen = torch.Generator().manual_seed(0)
    model = Nested().train()
    x = torch.randn(64, 8, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    assert linear_layer_names(model) == ["block.0", "head"]
    first = quantize_model(model, make_configs(8), x, x, y)
    second = quantize_model(model, make_configs(8), x, x, y)
    assert first.fp32_accuracy == second.fp32_accuracy  # dropout off during evaluation
    assert model.training and model.block[2].training
    assert [row.name for row in first.layers] == ["block.0", "head"]
