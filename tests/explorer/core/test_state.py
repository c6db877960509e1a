"""Session-state defaults and the sync callbacks of ``explorer.core.state``, on a plain dict."""

import pytest

from explorer.core import state as S
from explorer.core.pipeline import DataSettings
from quantlib.config_loader import MAX_CONFIG_BYTES, load_config_from_string, parse_section


@pytest.fixture
def state() -> dict:
    state: dict = {}
    S.init_state(state)
    return state


def fields_of(state: dict, section: str) -> dict:
    return {field: state[S.field_key(section, field)] for field in S.FIELD_PATHS}


def test_init_loads_the_default_preset_into_text_and_widgets(state):
    default = load_config_from_string((S.PRESET_DIR / S.DEFAULT_PRESET).read_text())
    for section in ("weight", "outputs"):
        text = state[S.store_key(section)]
        assert state[S.text_key(section)] == text
        config = parse_section(text, section)
        assert config == default[S.RESULT_KEYS[section]]
        assert fields_of(state, section) == S.field_values(config)
    assert state[S.ACT_ENABLED] is False
    assert parse_section(state[S.store_key("activation")], "activation")
    assert S.data_settings(state) == DataSettings()
    assert S.preset_names()[0] == S.DEFAULT_PRESET


def test_init_keeps_existing_values(state):
    state[S.store_key("weight")] = "edited"
    state[S.data_key("seed")] = 5
    S.init_state(state)
    assert state[S.store_key("weight")] == "edited" and state[S.data_key("seed")] == 5


def test_text_change_updates_widgets_only_when_valid(state):
    state[S.text_key("weight")] = "bit_type: {bits: 3, signed: false}\nobserver_type: KLObserver\n"
    S.on_text_change(state, "weight")
    assert state[S.store_key("weight")] == state[S.text_key("weight")]
    assert (state["weight.bits"], state["weight.signed"], state["weight.observer_type"]) == (
        3, False, "KLObserver")
    state[S.text_key("weight")] = "bit_type: {bits: 300}\n"
    S.on_text_change(state, "weight")
    assert state[S.store_key("weight")] == "bit_type: {bits: 300}\n"  # text kept
    assert state["weight.bits"] == 3  # widgets keep the last valid values


def test_field_change_rewrites_text_and_renames_the_default_name(state):
    state["outputs.bits"] = 4
    S.on_field_change(state, "outputs", "bits")
    config = parse_section(state[S.store_key("outputs")], "outputs")
    assert config.bit_type.bits == 4 and config.bit_type.name == "uint4"
    assert state[S.text_key("outputs")] == state[S.store_key("outputs")]


def test_field_change_keeps_a_custom_name(state):
    text = state[S.store_key("weight")].replace("name: int8", "name: my_format")
    state[S.store_key("weight")] = text
    state["weight.bits"] = 6
    S.on_field_change(state, "weight", "bits")
    assert "name: my_format" in state[S.store_key("weight")]


def test_field_change_on_unfixable_text_leaves_it_and_says_why(state):
    state[S.store_key("weight")] = "observer_type: [\n"
    state["weight.kl_bins"] = 64
    S.on_field_change(state, "weight", "kl_bins")
    assert state[S.store_key("weight")] == "observer_type: [\n"
    assert "fix the YAML" in state[S.notice_key("weight")]


def test_alpha_is_written_without_float_noise(state):
    state["outputs.percentile_alpha"] = 0.9996000000000001
    S.on_field_change(state, "outputs", "percentile_alpha")
    assert "percentile_alpha: 0.9996\n" in state[S.store_key("outputs")]


@pytest.mark.parametrize("preset", S.preset_names())
def test_every_preset_loads(state, preset):
    state[S.PRESET] = preset
    S.on_preset_change(state)
    assert state[S.CONFIG_NOTICE][0] == "success"
    expected = load_config_from_string((S.PRESET_DIR / preset).read_text())
    for section in ("weight", "outputs"):
        assert parse_section(state[S.store_key(section)], section) == expected[
            S.RESULT_KEYS[section]]


def test_document_with_activation_enables_it_and_round_trips(state):
    text = (S.PRESET_DIR / "w8a8_minmax.yaml").read_text() + (
        "activation:\n  observer_type: PercentileObserver\n  bit_type: {bits: 6}\n")
    assert S.apply_document(state, text) is None
    assert state[S.ACT_ENABLED] is True and state["activation.bits"] == 6
    assert load_config_from_string(S.document_text(state)) == load_config_from_string(text)


def test_document_text_leaves_out_a_disabled_activation(state):
    assert load_config_from_string(S.document_text(state))["activation"] is None


def test_flow_style_document_is_rebuilt_from_values(state):
    text = "{weight: {observer_type: KLObserver}, outputs: {bit_type: {bits: 4}}}\n"
    assert S.apply_document(state, text) is None
    assert parse_section(state[S.store_key("weight")], "weight").observer_type == "KLObserver"
    assert state["outputs.bits"] == 4


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"weight: {bits: 4}\noutputs: {}\n", "weight.bits"),
        (b"x" * (MAX_CONFIG_BYTES + 1), "at most"),
        (b"\xff\xfe", "UTF-8"),
        (b"weight: &a {}\noutputs: *a\n", "alias"),
    ],
    ids=["invalid-config", "too-big", "not-utf8", "yaml-alias"],
)
def test_bad_upload_changes_nothing(state, data, expected):
    before = dict(state)
    level, message = S.load_upload(state, "up.yaml", data)
    assert level == "error" and expected in message and "up.yaml" in message
    assert state == before


def test_ensure_section_widgets_reseeds_dropped_widget_state(state):
    state[S.store_key("activation")] = "bit_type: {bits: 5}\n"
    S.ensure_section_widgets(state, "activation")
    assert state[S.text_key("activation")] == "bit_type: {bits: 5}\n"
    assert state["activation.bits"] == 5


# --- issue 14: a YAML edit of bits/signed renames a default-pattern name ----------------------

@pytest.mark.parametrize("text, expected, adjusted", [
    ("bit_type:\n  bits: 4\n  signed: true\n  name: int8\n", "name: int4", True),
    ("bit_type: {bits: 6, signed: false, name: int8}\n", "name: uint6", True),
    ("# keep me\nbit_type:\n  bits: 4\n  name: uint8\n", "name: int4", True),  # signed default
    ("bit_type:\n  bits: 4\n  signed: true\n  name: my_int\n", "name: my_int", False),
    ("bit_type:\n  bits: 8\n  signed: true\n  name: int8\n", "name: int8", False),
    ("bit_type:\n  bits: many\n  name: int8\n", "name: int8", False),
], ids=["block", "flow-unsigned", "default-signed", "custom-name", "already-right",
        "invalid-bits"])
def test_sync_default_name(text, expected, adjusted):
    new, message = S.sync_default_name(text)
    assert expected in new
    assert (message is not None) is adjusted
    old = S.get_field(text, ("bit_type", "name"))
    if adjusted:  # only the name changed: every other character is kept
        assert "Adjusted `bit_type.name`" in message
        assert new == text.replace(f"name: {old}", expected)
    else:
        assert new == text


def test_text_change_renames_the_name_keeps_the_rest_and_says_so():
    state: dict = {}
    S.init_state(state)
    text = state[S.store_key("weight")].replace("bits: 8", "bits: 4")
    state[S.text_key("weight")] = text
    S.on_text_change(state, "weight")
    stored = state[S.store_key("weight")]
    assert stored == text.replace("name: int8", "name: int4")  # only that line changed
    assert state[S.text_key("weight")] == stored
    assert state[S.field_key("weight", "bits")] == 4
    assert "int8 to int4" in state[S.notice_key("weight")]
    config, _, warnings = S.parse_text(stored, "weight")
    assert config.bit_type.name == "int4" and not warnings


def test_config_upload_limit_is_one_number():
    from quantlib.config_loader import MAX_CONFIG_BYTES

    assert f"{MAX_CONFIG_BYTES // 1024} KiB" == S.CONFIG_UPLOAD_LIMIT
    assert S.CONFIG_UPLOAD_LIMIT in S.CONFIG_UPLOAD_HELP
    level, message = S.load_upload({}, "big.yaml", b"#" * (MAX_CONFIG_BYTES + 1))
    assert level == "error" and S.CONFIG_UPLOAD_LIMIT in message


def test_text_change_keeps_invalid_bits_exactly_as_typed():
    state: dict = {}
    S.init_state(state)
    text = state[S.store_key("weight")].replace("bits: 8", "bits: 99")
    state[S.text_key("weight")] = text
    S.on_text_change(state, "weight")
    assert state[S.store_key("weight")] == text and "name: int8" in text
    assert state[S.notice_key("weight")] is None
