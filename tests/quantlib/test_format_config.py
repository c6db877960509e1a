"""The number formats in BitType, QuantConfig and YAML: names, derived fields, the
granularity rules and their errors, round trips and the presets."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from quantlib.bit_type import BitType
from quantlib.config_loader import (
    ConfigWarning,
    dump_config_to_yaml,
    load_config_from_string,
    load_config_from_yaml,
    section_to_yaml,
)
from quantlib.errors import ConfigError
from quantlib.formats.registry import FORMATS
from quantlib.quant_config import QuantConfig

FLOAT_NAMES = [name for name, spec in FORMATS.items() if spec.family != "int"]
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "formats"
OUTPUTS = "outputs: {}\n"


def weight_yaml(body: str) -> str:
    return "weight:\n" + "".join(f"  {line}\n" for line in body.strip().splitlines()) + OUTPUTS


def test_integer_bit_types_keep_their_defaults():
    assert BitType() == BitType(8, True, "int8")
    assert BitType(4, False).name == "uint4" and BitType(4, False).qmax == 15
    assert not BitType().is_float and BitType().family == "int"
    assert BitType(4, True).format.name == "int4"
    assert BitType(4, True, "mylabel").format.name == "int4"


@pytest.mark.parametrize("name", FLOAT_NAMES)
def test_float_names_derive_bits_and_signed(name):
    spec = FORMATS[name]
    bit_type = BitType(name=name)
    assert (bit_type.bits, bit_type.signed, bit_type.format) == (spec.element_bits, True, spec)
    assert bit_type.is_float and bit_type.family == spec.family
    assert BitType(spec.element_bits, True, name) == bit_type
    assert bit_type.qmin == -bit_type.qmax and bit_type.num_levels == 2 * bit_type.qmax + 1


@pytest.mark.parametrize(("name", "qmax"), [("mxfp4", 7), ("nvfp4", 7), ("mxfp6_e2m3", 31),
                                            ("mxfp6_e3m2", 31), ("fp8_e4m3", 126),
                                            ("fp8_e5m2", 123), ("mxint8", 127)])
def test_float_code_ranges(name, qmax):
    assert BitType(name=name).qmax == qmax


@pytest.mark.parametrize(("kwargs", "field"), [({"bits": 4, "name": "fp8_e4m3"}, "bits"),
                                               ({"signed": False, "name": "mxfp4"}, "signed")],
                         ids=["bits", "signed"])
def test_inconsistent_float_fields_raise(kwargs, field):
    with pytest.raises(ConfigError) as err:
        BitType(**kwargs)
    assert err.value.path == field


@pytest.mark.parametrize("name", ["fp4", "mxfp5", "nvfp8", "fp8_e3m4"])
def test_format_shaped_labels_stay_integer_labels_with_a_warning(name):
    assert BitType(8, True, name).format.name == "int8"  # a label, as before formats
    with pytest.warns(ConfigWarning, match="not a number format.*mxfp4.*nvfp4"):
        load_config_from_string(weight_yaml(f"bit_type: {{bits: 8, name: {name}}}"))


def test_mx_and_nvfp4_default_their_block_size():
    assert QuantConfig("block_wise", BitType(name="mxfp4")).block_size == 32
    assert QuantConfig("block_wise", BitType(name="nvfp4")).block_size == 16


@pytest.mark.parametrize(("kwargs", "field", "says"), [
    ({"calibration_mode": "layer_wise", "bit_type": BitType(name="mxfp4")},
     "calibration_mode", "block_wise"),
    ({"calibration_mode": "channel_wise", "bit_type": BitType(name="nvfp4")},
     "calibration_mode", "block_wise"),
    ({"calibration_mode": "block_wise", "bit_type": BitType(name="mxfp4"), "block_size": 16},
     "block_size", "32"),
    ({"calibration_mode": "block_wise", "bit_type": BitType(name="nvfp4"), "block_size": 32},
     "block_size", "16"),
    ({"calibration_mode": "block_wise"}, "block_size", "needs block_size"),
    ({"calibration_mode": "channel_wise", "block_size": 32}, "block_size", "block_wise only"),
    ({"calibration_mode": "block_wise", "block_size": 1}, "block_size", "2 to 8192"),
    ({"calibration_mode": "block_wise", "block_size": 10**6}, "block_size", "2 to 8192"),
    ({"bit_type": BitType(name="fp8_e4m3"), "quantization_method": "Affine"},
     "quantization_method", "Uniform"),
    ({"calibration_mode": "block_wise", "block_size": 32, "observer_type": "OmseObserver"},
     "observer_type", "MinmaxObserver, EmaMinmaxObserver"),
], ids=["mx-layer", "nvfp4-channel", "mx-16", "nvfp4-32", "block-no-size", "size-no-block",
        "size-1", "size-huge", "fp8-affine", "block-omse"])
def test_config_rules_name_the_field_and_the_choices(kwargs, field, says):
    with pytest.raises(ConfigError) as err:
        QuantConfig(**kwargs)
    assert err.value.path == field and says in str(err.value)


def test_yaml_float_format_without_bits():
    configs = load_config_from_string(weight_yaml(
        "calibration_mode: block_wise\nblock_size: 32\nbit_type: {name: mxfp4}"))
    weight = configs["weight"]
    assert weight.bit_type == BitType(name="mxfp4") and weight.block_size == 32


@pytest.mark.parametrize(("body", "path", "says"), [
    ("bit_type: {name: fp8_e4m3, bits: 4}", "weight.bit_type.bits", "fp8_e4m3 has bits 8"),
    ("bit_type: {name: mxfp4, signed: false}", "weight.bit_type.signed", "true"),
    ("bit_type: {name: fp4}", "weight.bit_type.bits", "nvfp4"),
    ("bit_type: {name: int4}", "weight.bit_type.bits", "missing"),
    ("calibration_mode: block_wise\nbit_type: {name: mxfp4}\nblock_size: 64",
     "weight.block_size", "32"),
    ("calibration_mode: block_wise\nblock_size: many", "weight.block_size", "2 to 8192"),
    ("bit_type: {name: nvfp4}", "weight.calibration_mode", "block_wise"),
    ("calibration_mode: blockwise", "weight.calibration_mode", "channel_wise, block_wise"),
], ids=["bits", "signed", "unknown", "int-needs-bits", "mx-size", "size-type", "nvfp4-mode",
        "mode-choices"])
def test_yaml_errors_name_the_field_and_line(body, path, says):
    with pytest.raises(ConfigError) as err:
        load_config_from_string(weight_yaml(body))
    assert err.value.path == path and says in str(err.value)
    assert err.value.line is not None


def test_int_name_mismatch_still_warns():
    with pytest.warns(ConfigWarning):
        load_config_from_string(weight_yaml("bit_type: {bits: 4, name: int8}"))


@pytest.mark.parametrize("body", [
    "calibration_mode: block_wise\nblock_size: 128\nbit_type: {bits: 4}",
    "calibration_mode: block_wise\nbit_type: {name: nvfp4}",
    "calibration_mode: channel_wise\nbit_type: {name: fp8_e5m2}\nobserver_type: OmseObserver",
], ids=["int4-g128", "nvfp4", "fp8-omse"])
def test_yaml_round_trips(body):
    configs = load_config_from_string(weight_yaml(body))
    assert load_config_from_string(dump_config_to_yaml(configs)) == configs
    section = section_to_yaml(configs["weight"])
    assert section.splitlines()[1].startswith("block_size:") == (
        configs["weight"].block_size is not None)


def test_dumps_without_blocks_do_not_mention_block_size():
    assert "block_size" not in dump_config_to_yaml(load_config_from_string("weight: {}\n"
                                                                           + OUTPUTS))


@pytest.mark.parametrize("preset", ["w4_g128", "mxfp4", "nvfp4", "fp8_e4m3"])
def test_format_presets_load_without_warnings(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configs = load_config_from_yaml(CONFIG_DIR / f"{preset}.yaml")
    assert configs["weight"].bit_type.format.name == {"w4_g128": "int4"}.get(preset, preset)
    assert load_config_from_string(dump_config_to_yaml(configs)) == configs
