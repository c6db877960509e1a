"""YAML configs: the seed's format, round trips, and errors that say what to fix."""

import warnings
from pathlib import Path

import pytest

from quantlib.bit_type import BitType
from quantlib.config_loader import (
    ConfigError,
    ConfigWarning,
    dump_config_to_yaml,
    load_config_from_string,
    load_config_from_yaml,
    parse_section,
    section_to_yaml,
)
from quantlib.quant_config import QuantConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def test_seed_config_loads_with_the_seed_keys():
    configs = load_config_from_yaml(CONFIG_DIR / "attn_config.yaml")
    assert set(configs) == {"output", "weight", "activation", "transform"}
    assert configs["transform"] is None  # no transform: section
    assert configs["activation"] is None
    out, weight = configs["output"], configs["weight"]
    assert out.observer_type == "PercentileObserver" and out.percentile_alpha == 0.9995
    assert out.bit_type == BitType(8, False, "uint8")
    assert weight.calibration_mode == "channel_wise" and weight.bit_type.signed


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_loads_and_round_trips(path):
    configs = load_config_from_yaml(path)
    assert load_config_from_string(dump_config_to_yaml(configs)) == configs


def test_output_key_is_accepted_as_well_as_outputs():
    text = "weight: {observer_type: KLObserver}\noutput: {bit_type: {bits: 4}}\n"
    configs = load_config_from_string(text)
    assert configs["output"].bit_type.bits == 4
    assert configs["weight"].observer_type == "KLObserver"


def test_activation_section_is_optional_and_parsed():
    text = "weight: {}\noutputs: {}\nactivation:\n  calibration_mode: channel_wise\n"
    assert load_config_from_string(text)["activation"].calibration_mode == "channel_wise"


def test_section_helpers_round_trip():
    cfg = QuantConfig(calibration_mode="channel_wise", bit_type=BitType(6, False),
                      observer_type="OmseObserver", quantization_method="Affine")
    assert parse_section(section_to_yaml(cfg), "weight") == cfg


@pytest.mark.parametrize("text,path,line,fragment", [
    ("weight:\n  bit_type:\n    bits: 17\noutputs: {}\n", "weight.bit_type.bits", 3,
     "from 2 to 16"),
    ("weight:\n  observer_type: MaxObserver\noutputs: {}\n", "weight.observer_type", 2,
     "KLObserver"),
    ("weight: {}\noutputs:\n  quantization_method: Symmetric\n", "outputs.quantization_method",
     3, "Uniform, Affine"),
    ("weight: {}\noutputs:\n  calibraton_mode: layer_wise\n", "outputs.calibraton_mode", 3,
     "did you mean 'calibration_mode'"),
    ("weight: {}\noutput:\n  percentile_alpha: 1.5\n", "output.percentile_alpha", 3, "(0.5, 1.0]"),
], ids=["bits-17", "unknown-observer", "unknown-method", "misspelled-field", "alpha-1.5"])
def test_errors_name_the_field_line_and_choices(text, path, line, fragment):
    with pytest.raises(ConfigError) as info:
        load_config_from_string(text)
    err = info.value
    assert (err.path, err.line) == (path, line)
    assert fragment in str(err) and path in str(err) and f"line {line}" in str(err)


def test_contradicting_name_warns_but_loads():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = parse_section("bit_type: {bits: 4, signed: false, name: int8}", "weight")
    assert cfg.bit_type.qmax == 15
    assert any(issubclass(w.category, ConfigWarning) and "uint4" in str(w.message)
               for w in caught)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_from_yaml(tmp_path / "nope.yaml")


def test_python_tags_are_refused_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    text = f"weight: !!python/object/apply:os.system ['touch {marker}']\noutputs: {{}}\n"
    with pytest.raises(ConfigError, match="not allowed"):
        load_config_from_string(text)
    assert not marker.exists()
