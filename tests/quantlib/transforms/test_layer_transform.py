"""QuantLinear with a transform, and the transform: section of the config loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.config_loader import (
    ConfigError,
    dump_config_to_yaml,
    load_config_from_string,
    parse_transform,
)
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from quantlib.transforms import SmoothQuantConfig, TransformConfig

BASE = """\
weight: {calibration_mode: channel_wise, bit_type: {bits: 8, signed: true}}
outputs: {calibration_mode: layer_wise, bit_type: {bits: 8, signed: true}}
"""


def outlier_inputs(tokens: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, n, generator=gen)
    x[:, :4] *= 40.0  # outlier channels, as in transformers
    return x


def linear(n: int = 256, out: int = 128, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(n, out)


def test_transform_section_round_trips_and_is_none_when_absent():
    assert load_config_from_string(BASE)["transform"] is None
    configs = load_config_from_string(BASE + "transform:\n  smoothquant: {alpha: 0.7}\n"
                                              "  rotation: hadamard\n  weight_algorithm: gptq\n")
    assert configs["transform"] == TransformConfig(SmoothQuantConfig(0.7), "hadamard",
                                                   weight_algorithm="gptq")
    assert load_config_from_string(dump_config_to_yaml(configs)) == configs


@pytest.mark.parametrize("body, path, line, choices", [
    ("  gptq:\n    damp: -1\n", "transform.gptq.damp", 5, "(0, 1]"),
    ("  rotation: hadamrd\n", "transform.rotation", 4, "none, hadamard"),
    ("  weight_algorithm: spqr\n", "transform.weight_algorithm", 4, "rtn, awq, gptq"),
    ("  smoothqant: {}\n", "transform.smoothqant", 4, "did you mean 'smoothquant'"),
], ids=["damp", "rotation", "algorithm", "typo-key"])
def test_transform_errors_name_the_field_line_and_choices(body, path, line, choices):
    with pytest.raises(ConfigError) as caught:
        load_config_from_string(BASE + "transform:\n" + body)
    assert caught.value.path == path and caught.value.line == line
    assert choices in str(caught.value)


def test_unknown_section_lists_transform():
    with pytest.raises(ConfigError, match="did you mean 'transform'"):
        load_config_from_string(BASE + "transfrom: {}\n")
    assert parse_transform("rotation: hadamard").rotation == "hadamard"


@pytest.mark.parametrize("config", [
    TransformConfig(SmoothQuantConfig(0.5)), TransformConfig(rotation="hadamard"),
    TransformConfig(SmoothQuantConfig(0.8), "hadamard", seed=3),
], ids=["smoothquant", "hadamard", "both"])
def test_fp32_forward_is_the_original_layer(config):
    lin = linear()
    configs = load_config_from_string(BASE)
    layer = QuantLinear(lin, configs["output"], configs["weight"])
    x = outlier_inputs(512, 256, 1)
    layer.transform(x, config)
    assert layer.original_weight is not None and not torch.equal(layer.weight, lin.weight)
    y, ref = layer(x), lin(x).detach()
    assert float((y - ref).norm() / ref.norm()) < 1e-5


def test_smoothquant_improves_w8a8_per_tensor_output_and_profiles_against_the_original():
    per_tensor = QuantConfig(calibration_mode="layer_wise", bit_type=BitType(8, True),
                             observer_type="MinmaxObserver")
    x, held_out = outlier_inputs(1024, 256, 1), outlier_inputs(512, 256, 2)
    qsnr = {}
    for name, config in (("plain", None), ("smooth", TransformConfig(SmoothQuantConfig(0.5)))):
        layer = QuantLinear(linear(), per_tensor, per_tensor, act_config=per_tensor)
        if config is not None:
            layer.transform(x, config)
        layer.calibration(x)
        layer.compute_output_quant_params()
        layer.mode = "quantized"
        layer(held_out)
        qsnr[name] = layer.get_profiling_results()["output"]["statistics"]["qsnr"]
    assert qsnr["smooth"] > qsnr["plain"] + 3.0, qsnr


def test_gptq_beats_rtn_on_held_out_data_w4_g128():
    w4 = QuantConfig(calibration_mode="block_wise", block_size=128,
                     bit_type=BitType(4, True, "int4"), observer_type="MinmaxObserver")
    out = QuantConfig(bit_type=BitType(8, True), enable_profiler=False)
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(256, 256, generator=gen) / 16  # correlated inputs: where GPTQ helps
    x, held_out = torch.randn(2048, 256, generator=gen) @ mix, torch.randn(512, 256) @ mix
    lin = linear()
    ref = lin(held_out).detach()
    mse = {}
    for algorithm in ("rtn", "gptq"):
        layer = QuantLinear(lin, out, w4)
        result = layer.transform(x, TransformConfig(weight_algorithm=algorithm))
        if algorithm == "gptq":
            assert torch.equal(layer.dequant_weight, result.quantized_weight)
        y = torch.nn.functional.linear(held_out, layer.dequant_weight, layer.bias)
        mse[algorithm] = float(((y - ref) ** 2).mean())
    assert mse["gptq"] < 0.9 * mse["rtn"], mse


def test_transform_must_come_before_calibration_and_only_once():
    configs = load_config_from_string(BASE)
    layer = QuantLinear(linear(), configs["output"], configs["weight"])
    x = outlier_inputs(64, 256, 0)
    layer.transform(x, TransformConfig(rotation="hadamard"))
    with pytest.raises(RuntimeError, match="already installed"):
        layer.transform(x, TransformConfig(rotation="hadamard"))
    fresh = QuantLinear(linear(), configs["output"], configs["weight"])
    fresh.calibration(x)
    with pytest.raises(RuntimeError, match="before calibration"):
        fresh.transform(x, TransformConfig())
