"""Behaviour of the comment-preserving YAML edits in ``explorer.core.yaml_edit``."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from explorer.core.yaml_edit import (
    format_scalar,
    get_field,
    join_document,
    set_field,
    split_document,
)
from quantlib.config_loader import load_config_from_string, parse_section
from quantlib.quant_config import OBSERVER_TYPES

PRESETS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("*.yaml"))
BLOCK = """\
# my weight settings
calibration_mode: channel_wise   # per output row
bit_type:
  bits: 8
  signed: true
  name: int8
observer_type: MinmaxObserver
"""
FLOW = "bit_type: {bits: 8, signed: true, name: int8}  # flow\nobserver_type: MinmaxObserver\n"


def lines_changed(before: str, after: str) -> list[tuple[str, str]]:
    return [(b, a) for b, a in zip(before.splitlines(), after.splitlines()) if b != a]


@pytest.mark.parametrize(
    ("path", "value", "line"),
    [
        (("bit_type", "bits"), 4, "  bits: 4"),
        (("bit_type", "signed"), False, "  signed: false"),
        (("observer_type",), "KLObserver", "observer_type: KLObserver"),
        (("calibration_mode",), "layer_wise", "calibration_mode: layer_wise   # per output row"),
    ],
    ids=["bits", "signed", "observer", "mode-keeps-comment"],
)
def test_set_field_rewrites_one_line_of_a_block_section(path, value, line):
    after = set_field(BLOCK, path, value)
    (change,) = lines_changed(BLOCK, after)
    assert change[1] == line
    assert after.startswith("# my weight settings\n")


def test_set_field_rewrites_inside_a_flow_mapping_and_keeps_the_comment():
    after = set_field(FLOW, ("bit_type", "bits"), 3)
    assert after.splitlines()[0] == "bit_type: {bits: 3, signed: true, name: int8}  # flow"


@pytest.mark.parametrize(
    ("text", "path", "value", "expected"),
    [
        (BLOCK, ("kl_bins",), 512, BLOCK + "kl_bins: 512\n"),
        (BLOCK.rstrip("\n"), ("kl_bins",), 512, BLOCK + "kl_bins: 512\n"),
        ("observer_type: KLObserver\n", ("bit_type", "bits"), 4,
         "observer_type: KLObserver\nbit_type:\n  bits: 4\n"),
        ("bit_type:\n  bits: 8\nobserver_type: X\n", ("bit_type", "signed"), False,
         "bit_type:\n  bits: 8\n  signed: false\nobserver_type: X\n"),
        ("bit_type: {bits: 8}\n", ("bit_type", "signed"), True,
         "bit_type: {bits: 8, signed: true}\n"),
        ("bit_type: {}\n", ("bit_type", "bits"), 5, "bit_type: {bits: 5}\n"),
        ("bit_type:\nobserver_type: X\n", ("bit_type", "bits"), 5,
         "bit_type: {bits: 5}\nobserver_type: X\n"),
        ("observer_type:\n", ("observer_type",), "KLObserver", "observer_type: KLObserver\n"),
        ("", ("observer_type",), "KLObserver", "observer_type: KLObserver\n"),
    ],
    ids=["append-top-level", "append-without-final-newline", "append-nested",
         "insert-into-block-bit-type", "insert-into-flow", "insert-into-empty-flow",
         "fill-null-bit-type", "fill-empty-value", "empty-text"],
)
def test_set_field_adds_missing_fields(text, path, value, expected):
    assert set_field(text, path, value) == expected


def test_set_field_on_broken_yaml_rewrites_the_matching_line_or_gives_up():
    broken = "observer_type: [\nbit_type: {bits: 8, signed: true}\n"
    assert set_field(broken, ("bit_type", "bits"), 4) == broken.replace("bits: 8", "bits: 4")
    assert set_field(broken, ("kl_bins",), 64) is None


FIELD_EDITS = {
    "bits": (("bit_type", "bits"), 5),
    "signed": (("bit_type", "signed"), False),
    "observer_type": (("observer_type",), "OmseObserver"),
    "quantization_method": (("quantization_method",), "Affine"),
    "calibration_mode": (("calibration_mode",), "layer_wise"),
    "percentile_alpha": (("percentile_alpha",), 0.99),
    "kl_bins": (("kl_bins",), 256),
}


@pytest.mark.filterwarnings("ignore::quantlib.config_loader.ConfigWarning")
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
@pytest.mark.parametrize("section", ["weight", "outputs"])
@pytest.mark.parametrize(("path", "value"), FIELD_EDITS.values(), ids=FIELD_EDITS.keys())
def test_set_field_on_every_preset_changes_exactly_that_field(preset, section, path, value):
    body = split_document(preset.read_text())[section]
    before = parse_section(body, section).to_dict()
    after = parse_section(set_field(body, path, value), section).to_dict()
    target = after["bit_type"] if path[0] == "bit_type" else after
    assert target[path[-1]] == value
    target[path[-1]] = (before["bit_type"] if path[0] == "bit_type" else before)[path[-1]]
    if path[0] == "bit_type":
        after["bit_type"]["name"] = before["bit_type"]["name"]  # name is a label only
    assert after == before


@given(st.sampled_from(OBSERVER_TYPES), st.integers(2, 16), st.booleans(),
       st.floats(0.5001, 1.0, allow_nan=False), st.integers(16, 65536))
def test_set_field_values_read_back_exactly(observer, bits, signed, alpha, kl_bins):
    text = BLOCK
    for path, value in ((("observer_type",), observer), (("bit_type", "bits"), bits),
                        (("bit_type", "signed"), signed), (("percentile_alpha",), alpha),
                        (("kl_bins",), kl_bins), (("bit_type", "name"), "")):
        text = set_field(text, path, value)
    config = parse_section(text, "weight")
    assert (config.observer_type, config.bit_type.bits, config.bit_type.signed) == (
        observer, bits, signed)
    assert config.percentile_alpha == pytest.approx(alpha, abs=1e-9)
    assert config.kl_bins == kl_bins


@pytest.mark.parametrize(
    ("value", "scalar"),
    [(True, "true"), (8, "8"), (0.9995, "0.9995"), ("KLObserver", "KLObserver"),
     ("yes", '"yes"'), ("a: b", '"a: b"'), ("", '""')],
)
def test_format_scalar_reads_back_as_the_same_value(value, scalar):
    assert format_scalar(value) == scalar
    assert yaml.safe_load(f"k: {scalar}")["k"] == value


def test_get_field_reads_block_and_flow_values():
    assert get_field(BLOCK, ("bit_type", "name")) == "int8"
    assert get_field(FLOW, ("bit_type", "bits")) == "8"
    assert get_field(BLOCK, ("kl_bins",)) is None
    assert get_field("a: [", ("a",)) is None


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_split_then_join_round_trips_every_preset(preset):
    text = preset.read_text()
    bodies = split_document(text)
    assert set(bodies) == {"weight", "outputs"}
    assert load_config_from_string(join_document(bodies)) == load_config_from_string(text)


def test_split_keeps_comments_with_their_section():
    text = "# file comment\nweight:   # W\n  bits_note: 1\n# about outputs\noutputs:\n  x: 1\n"
    assert split_document(text) == {"weight": "# W\nbits_note: 1\n",
                                    "outputs": "# about outputs\nx: 1\n"}


def test_split_gives_up_on_flow_sections():
    assert split_document("weight: {observer_type: KLObserver}\noutputs: {}\n") == {}


@pytest.mark.parametrize("text", [
    "bits: 4\nx:\n" + "".join(" " * i + "-\n" for i in range(1, 800)),
    "bit_type: " + "[" * 4000 + "]" * 4000 + "\n",
    "bit_type:\n  bits: 4\n" + "".join(" " * i + f"k{i}:\n" for i in range(1200)),
], ids=["block-sequence-800", "flow-4000", "block-mapping-1200"])
def test_deep_nesting_is_invalid_yaml_not_a_recursion_error(text):
    """Past MAX_DEPTH the text is treated as invalid: no RecursionError, no slow scan."""
    assert get_field(text, ("bit_type", "bits")) is None
    edited = set_field(text, ("bit_type", "bits"), 6)  # the line fallback, or None
    assert edited is None or edited.count("\n") == text.count("\n")
