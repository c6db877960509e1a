"""Shareable links round-trip and refuse hostile input; exported safetensors reload exactly."""

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from explorer.core.pipeline import DataSettings, run_pipeline
from explorer.data.sources import make_sample_data
from explorer.share.export import code_dtype, dequantize_exported, export_layer, load_exported
from explorer.share.link import SharedState, ShareError, decode_state, encode_state
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from tests.helpers import link_token

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
WEIGHT = "# per-channel int4\ncalibration_mode: channel_wise\nbit_type: {bits: 4, signed: true}\n"
OUTPUTS = "observer_type: PercentileObserver\npercentile_alpha: 0.999\n"


def small_settings(**kw) -> DataSettings:
    base = dict(in_features=48, out_features=32, seed=3, num_batches=2, batch_size=16,
                input_source="Laplace")
    base.update(kw)
    return DataSettings(**base)


def state(**kw) -> SharedState:
    return SharedState(WEIGHT, OUTPUTS, None, small_settings(**kw))


VALID = "weight: 'observer_type: MinmaxObserver'\noutputs: 'kl_bins: 512'\n"


def token_for(text: str) -> dict:
    return {"s": link_token(text)}


def test_link_round_trips_to_identical_metrics():
    original = state()
    decoded = decode_state(encode_state(original))
    assert decoded == original  # comments in the YAML survive too
    text = f"weight:\n{_indent(decoded.weight_yaml)}outputs:\n{_indent(decoded.outputs_yaml)}"
    configs = load_config_from_string(text)
    a = run_pipeline(configs, make_sample_data(original.settings))
    b = run_pipeline(configs, make_sample_data(decoded.settings))
    for name in ("weight", "output"):
        assert a.tensors[name].statistics["qsnr"] == b.tensors[name].statistics["qsnr"]


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


@pytest.mark.parametrize("params,fragment", [
    ({}, "no 's' parameter"),
    ({"s": "!!!not-base64!!!"}, "damaged"),
    ({"s": "A" * 20_000}, "over 16,384 characters"),
    (token_for("v: 1\nweight: !!python/object/apply:os.system [ls]\n"), "not valid YAML"),
    (token_for("v: 1\nweight: 'bit_type: {bits: 99}'\noutputs: ''\ndata: {}\n"), "bits"),
    (token_for(f"v: 1\n{VALID}data: {{in_features: 10000000}}\n"), "in_features"),
    (token_for(f"v: 1\n{VALID}data: {{rm_rf: 1}}\n"), "unknown data setting"),
    (token_for(f"v: 1\n{VALID}data: {{input_source: Evil}}\n"), "input_source"),
    (token_for("a: &a [1]\nb: *a\n"), "not valid YAML"),
    (token_for("x" * 70_000), "over 65,536 bytes"),
    (token_for("[1, 2]"), "a link holds a mapping"),
], ids=["missing", "not-base64", "too-long", "python-tag", "bad-bits", "huge-layer",
        "unknown-setting", "unknown-source", "alias", "zip-bomb", "not-a-state"])
def test_hostile_or_bad_links_are_refused_cleanly(params, fragment):
    with pytest.raises(ShareError, match=fragment):
        decode_state(params)


@pytest.mark.parametrize("text", [
    "v: 1\nweight: 2001-13-45\n",          # datetime's ValueError
    "v: 1\nweight: !!int abc\n",           # int()'s ValueError
    "v: 1\nweight: !!float x\n",
    "v: 1\nweight: !!bool maybe\n",        # KeyError inside PyYAML
    "v: 1\nweight: !!timestamp nope\n",    # AttributeError inside PyYAML
    "v: " + "9" * 5000 + "\n",              # over sys.get_int_max_str_digits()
    "[" * 30_000,                           # RecursionError / quadratic scanner
    "{" * 30_000,
    "- " * 20_000,                          # deep block nesting
    "[" + "1," * 30_000 + "]",              # tens of thousands of tiny nodes
    "v: 1\nweight: !!python/name:os.system\n",
    "v: 1\nweight: !!binary aGVsbG8=\n",
    "\x00\x01binary",
], ids=["bad-date", "bad-int-tag", "bad-float-tag", "bad-bool-tag", "bad-timestamp-tag",
        "5000-digits", "deep-brackets", "deep-braces", "deep-block", "many-nodes",
        "python-name", "binary-tag", "control-chars"])
def test_hostile_yaml_inside_a_link_raises_only_share_error(text):
    started = time.perf_counter()
    with pytest.raises(ShareError):
        decode_state(token_for(text))
    assert time.perf_counter() - started < 5  # stopped early, not after a full slow parse


def test_activation_toggle_round_trips_with_its_text():
    off = SharedState(WEIGHT, OUTPUTS, "bit_type: {bits: 6}\n", small_settings(), False)
    on = dataclasses.replace(off, activation_enabled=True)
    assert decode_state(encode_state(off)) == off and decode_state(encode_state(on)) == on
    assert state().activation_enabled is False  # no text: off
    with pytest.raises(ShareError, match="activation_enabled"):
        decode_state(token_for(f"v: 1\n{VALID}activation_enabled: 'yes'\ndata: {{}}\n"))


def test_empty_weight_text_in_link_is_refused():
    with pytest.raises(ShareError, match="weight config is invalid"):
        decode_state(token_for("v: 1\nweight: ''\noutputs: ''\ndata: {}\n"))


@pytest.mark.parametrize("bits,signed,dtype", [(4, True, torch.int8), (8, False, torch.uint8),
                                               (12, True, torch.int16), (16, False, torch.int32)])
def test_code_dtype_is_the_smallest_that_fits(bits, signed, dtype):
    assert code_dtype(BitType(bits, signed)) == dtype


@pytest.mark.parametrize("bits,signed", [(4, True), (8, False), (16, True)])
def test_exported_layer_reloads_into_identical_codes_and_qparams_per_bit_type(bits, signed):
    torch.manual_seed(0)
    cfg = QuantConfig(calibration_mode="channel_wise", bit_type=BitType(bits, signed),
                      quantization_method="Affine")
    layer = QuantLinear(nn.Linear(24, 16), cfg, cfg, "fc")
    layer.calibration(torch.randn(8, 24))
    layer.compute_output_quant_params()
    yaml_text = (CONFIGS / "attn_config.yaml").read_text()
    tensors, meta = load_exported(export_layer(layer, yaml_text))
    assert torch.equal(tensors["weight.codes"].to(torch.int32), layer.quant_weight)
    assert torch.equal(tensors["weight.scale"], layer.weight_scaler)
    assert torch.equal(tensors["weight.zero_point"].long(), layer.weight_zero)
    assert torch.equal(tensors["output.scale"], layer.output_scaler)
    assert torch.equal(dequantize_exported(tensors), layer.dequant_weight)
    assert meta["config"] == yaml_text and meta["layer_name"] == "fc"
    assert meta["weight.bit_type"].startswith(f"bits={bits},signed={str(signed).lower()}")
