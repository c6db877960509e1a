"""The whole-model view's pure half: summary of the digits MLP quantized, table and figures."""

import math

import pytest

from explorer.core.figures import figure_payload_bytes
from explorer.core.model_quant import layer_sensitivity, quantize_model
from explorer.model.summary import (
    WholeModelSummary,
    describe_configs,
    format_accuracy,
    layer_table,
    make_accuracy_comparison_figure,
    make_layer_qsnr_figure,
    make_sensitivity_figure,
    run_whole_model,
)
from tests.explorer.core.test_model_quant import make_configs


@pytest.fixture(scope="module")
def summary(digits):
    progress = []
    result = run_whole_model(digits, make_configs(4), progress=lambda f, t: progress.append(f))
    assert progress[-1] == 1.0 and progress == sorted(progress)
    return result


def test_summary_matches_quantize_model_and_layer_sensitivity(digits, summary):
    configs = make_configs(4)
    direct = quantize_model(digits.model, configs, digits.train_x, digits.test_x, digits.test_y)
    assert summary.quantized_accuracy == direct.quantized_accuracy
    assert summary.fp32_accuracy == direct.fp32_accuracy > 0.9
    assert [row["name"] for row in summary.layers] == ["fc1", "fc2", "fc3"]
    assert summary.layers[1]["weight_qsnr"] == direct.layers[1].weight_qsnr
    assert summary.sensitivity == layer_sensitivity(digits.model, configs, digits.train_x,
                                                    digits.test_x, digits.test_y)
    assert (summary.num_calibration_rows, summary.num_eval_rows) == (1437, 360)
    assert set(summary.seconds) == {"quantize", "sensitivity"}


def test_without_sensitivity_only_the_whole_model_is_quantized(digits):
    quick = run_whole_model(digits, make_configs(8), sensitivity=False)
    assert quick.sensitivity == {} and set(quick.seconds) == {"quantize"}
    assert "accuracy, only this layer quantized (%)" not in layer_table(quick)[0]


def test_layer_table_has_one_row_per_linear_in_db_and_percent(summary):
    rows = layer_table(summary)
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "fc3"]
    assert rows[0]["shape (out x in)"] == "256 x 64"
    assert rows[2]["accuracy, only this layer quantized (%)"] == round(
        100 * summary.sensitivity["fc3"], 2)
    assert all(math.isfinite(r["weight QSNR (dB)"]) for r in rows)
    assert "input QSNR (dB)" not in rows[0]  # no activation config


def test_activation_config_adds_input_columns(digits):
    with_act = run_whole_model(digits, make_configs(8, activation=True), sensitivity=False)
    row = layer_table(with_act)[0]
    assert math.isfinite(row["input QSNR (dB)"]) and row["input clipped (%)"] >= 0
    fig = make_layer_qsnr_figure(with_act)
    assert [trace.name for trace in fig.data][-1] == "Input activation"


def test_figures_are_small_and_show_a_lossless_bar_as_infinity(summary):
    rows = [dict(r) for r in summary.layers]
    rows[0]["weight_qsnr"] = math.inf
    lossless = WholeModelSummary(seed=0, layers=tuple(rows), fp32_accuracy=0.97,
                                 quantized_accuracy=0.9, num_calibration_rows=1,
                                 num_eval_rows=1, sensitivity={"fc1": 0.95})
    fig = make_layer_qsnr_figure(lossless)
    weight = fig.data[0]
    assert weight.text[0] == "∞" and math.isfinite(weight.y[0])
    assert weight.y[0] > max(v for trace in fig.data for v in trace.y[1:])
    for figure in (make_layer_qsnr_figure(summary), make_sensitivity_figure(summary),
                   make_accuracy_comparison_figure([("a", summary), ("b", lossless)])):
        assert figure_payload_bytes(figure) < 64 * 1024


def test_text_helpers():
    assert format_accuracy(0.97222) == "97.2 %" and format_accuracy(math.nan) == "n/a"
    text = describe_configs(make_configs(4, activation=True))
    assert text.startswith("weight: int4 MinmaxObserver, channel_wise, Uniform")
    assert "activation: int4" in text
