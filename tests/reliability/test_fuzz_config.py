"""Fuzzing the config loader: whatever the text, only `ConfigError` comes out, and every
config that loads round-trips through `dump_config_to_yaml`."""

from __future__ import annotations

import copy
import json
import os
import warnings

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quantlib.bit_type import BitType
from quantlib.config_loader import (
    ConfigError,
    ConfigWarning,
    dump_config_to_yaml,
    load_config_from_string,
    parse_section,
    section_to_yaml,
)
from quantlib.quant_config import (
    CALIBRATION_MODES,
    FIELD_NAMES,
    OBSERVER_TYPES,
    QUANTIZATION_METHODS,
    QuantConfig,
)

# QL_FUZZ_EXAMPLES=20000 for a long hunt; 200 keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("QL_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _quiet_config_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        yield


def load_or_config_error(text):
    """Load; a ConfigError is a fine answer, any other exception fails the test."""
    try:
        configs = load_config_from_string(text)
    except ConfigError as err:
        assert str(err)  # a message, never empty
        return None
    assert configs["weight"] is not None and configs["output"] is not None
    assert load_config_from_string(dump_config_to_yaml(configs)) == configs
    return configs


# --- valid configs ---------------------------------------------------------------------

names = st.one_of(st.just(""), st.sampled_from(["int8", "uint4", "fp8-ish", "int16"]),
                  st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}", fullmatch=True))
bit_types = st.builds(BitType, bits=st.integers(2, 16), signed=st.booleans(), name=names)
quant_configs = st.builds(
    QuantConfig,
    calibration_mode=st.sampled_from(CALIBRATION_MODES),
    bit_type=bit_types,
    observer_type=st.sampled_from(OBSERVER_TYPES),
    quantization_method=st.sampled_from(QUANTIZATION_METHODS),
    percentile_alpha=st.floats(0.5, 1.0, exclude_min=True),
    kl_bins=st.integers(16, 65536),
    enable_profiler=st.booleans(),
    ema_momentum=st.floats(0.0, 1.0, exclude_max=True),
    omse_steps=st.integers(2, 1000),
)
config_sets = st.fixed_dictionaries({"weight": quant_configs, "output": quant_configs,
                                     "activation": st.none() | quant_configs,
                                     "transform": st.none()})  # transforms: tests/quantlib


@FUZZ
@given(configs=config_sets)
@example(configs={"weight": QuantConfig(bit_type=BitType(8, True, "fp8-ish.v2+")),
                  "output": QuantConfig(percentile_alpha=1), "activation": None,
                  "transform": None})
def test_valid_configs_round_trip_through_yaml(configs):
    text = dump_config_to_yaml(configs)
    assert load_config_from_string(text) == configs
    for config in configs.values():
        if config is not None:
            assert parse_section(section_to_yaml(config), "weight") == config


@pytest.mark.parametrize("name", ["\x85 \ufeff", "![x](http://h/i.png)", "<a href=x>a</a>",
                                  "int 8", "x" * 33], ids=["unicode-space", "markdown",
                                                           "html", "space", "too-long"])
def test_names_that_are_not_plain_labels_are_refused(name):
    """The name reaches pages, plots and reports, so only plain labels pass (an earlier
    fuzz find, "\x85 \ufeff", round-tripped; it is now refused)."""
    with pytest.raises(ConfigError, match="weight.bit_type.name: must be a plain label"):
        parse_section(f"bit_type: {{bits: 8, name: {json.dumps(name)}}}", "weight")


# --- arbitrary YAML trees --------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(list(FIELD_NAMES) + list(OBSERVER_TYPES) + list(CALIBRATION_MODES)
                    + ["bits", "signed", "name", "weight", "outputs", "output", "activation"]),
)
keys = st.one_of(st.sampled_from(["weight", "outputs", "output", "activation", "bit_type",
                                  "bits", "signed", "name", *FIELD_NAMES]),
                 st.text(max_size=10), st.integers(-3, 20), st.booleans(), st.none())
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(keys, inner, max_size=5), max_leaves=20)


@FUZZ
@given(tree=trees)
@example(tree={"weight": {"bit_type": {"bits": 10**5000 // 10**4000}}, "outputs": {}})
@example(tree={"weight": {"bit_type": None}, "outputs": {"kl_bins": float("nan")}})
@example(tree={True: 1})
def test_arbitrary_yaml_trees_give_config_error_or_configs(tree):
    load_or_config_error(yaml.safe_dump(tree, allow_unicode=True))


# --- mutations of a valid config -------------------------------------------------------

VALID = {
    "weight": {"calibration_mode": "channel_wise", "bit_type": {"bits": 4, "signed": True,
                                                                "name": "int4"},
               "observer_type": "OmseObserver", "quantization_method": "Uniform"},
    "outputs": {"calibration_mode": "layer_wise", "bit_type": {"bits": 8, "signed": False},
                "observer_type": "PercentileObserver", "quantization_method": "Affine",
                "percentile_alpha": 0.999, "kl_bins": 256, "enable_profiler": False},
    "activation": {"observer_type": "KLObserver"},
}


def _places(doc, prefix=()):
    """Every (parent dict, key) pair in the document, at any depth."""
    for key, value in doc.items():
        yield prefix, key
        if isinstance(value, dict):
            yield from _places(value, (*prefix, key))


PLACES = list(_places(VALID))
mutations = st.lists(st.tuples(st.sampled_from(["drop", "rename", "replace"]),
                               st.sampled_from(PLACES), keys, trees), min_size=1, max_size=4)


def _apply(doc, mutation):
    action, (prefix, key), new_key, new_value = mutation
    parent = doc
    for step in prefix:
        parent = parent.get(step) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or key not in parent:
        return
    if action == "drop":
        del parent[key]
    elif action == "rename":
        parent[new_key] = parent.pop(key)
    else:
        parent[key] = new_value


@FUZZ
@given(steps=mutations)
@example(steps=[("rename", ((), "outputs"), "output", None)])
@example(steps=[("replace", (("weight", "bit_type"), "bits"), "x", "eight")])
@example(steps=[("replace", (("outputs",), "percentile_alpha"), "x", float("nan"))])
def test_mutated_valid_configs_give_config_error_or_configs(steps):
    doc = copy.deepcopy(VALID)
    for step in steps:
        _apply(doc, step)
    load_or_config_error(yaml.safe_dump(doc))


def test_the_unmutated_config_loads():
    assert load_or_config_error(yaml.safe_dump(VALID))["activation"].observer_type == "KLObserver"


# --- arbitrary text and bytes ----------------------------------------------------------

YAML_ALPHABET = st.sampled_from(list("{}[]:-,&*!|>'\"%@`#?~ \n\t\r.0123456789eEabwxyz+_<=")
                                + ["weight", "outputs", "bits", "!!python/object:", "!!int ",
                                   "!!binary ", "*a", "&a ", "<<: ", "---\n", "...\n", "\\x00",
                                   "2001-13-45", "0x_", "9" * 40, ".nan", "\ufeff", "\x85"])
yamlish_text = st.lists(YAML_ALPHABET, max_size=60).map("".join)


@FUZZ
@given(text=st.text(max_size=200))
@example(text="observer_type: 2001-13-45")
@example(text="0x_: 1")
@example(text="weight:\n  bit_type: {bits: " + "9" * 5000 + "}\noutputs: {}")
@example(text="\x00")
@example(text="\ud800")
def test_arbitrary_text_gives_config_error_or_configs(text):
    load_or_config_error(text)


@FUZZ
@given(text=yamlish_text)
@example(text="!!bool x")
@example(text="!!timestamp x")
@example(text="? !!int abc\n: 1")
@example(text="[" * 200)
@example(text="weight: {<<: {}}")
def test_yaml_like_text_gives_config_error_or_configs(text):
    load_or_config_error(text)


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\xff\xfe\x00")
@example(data=b"weight: {}\noutputs: {}\n\x00")
def test_arbitrary_bytes_give_config_error_or_configs(data):
    load_or_config_error(data)


@FUZZ
@given(text=yamlish_text, section=st.sampled_from(["weight", "outputs", "activation"]))
def test_section_parser_gives_config_error_or_a_config(text, section):
    try:
        config = parse_section(text, section)
    except ConfigError:
        return
    assert parse_section(section_to_yaml(config), section) == config
