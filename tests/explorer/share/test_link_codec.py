"""Each check in the link decoder is reached by a hand-built share document and refuses it
with its own message: the YAML node cap and nesting cap, bool where an integer is expected
(Python's bool is an int), the version check and the "a link holds a mapping" check.

Tokens are built here the way `explorer.share.link.encode_state` builds them (YAML text ->
zlib -> base64url without padding), not through the code under test.
"""

from __future__ import annotations

import base64
import dataclasses
import zlib

import pytest
import yaml

from explorer.core.pipeline import DataSettings
from explorer.share import link
from explorer.share.link import SharedState, ShareError, decode_state, encode_state

GOOD = ("v: 1\nweight: 'observer_type: MinmaxObserver'\noutputs: 'kl_bins: 256'\n"
        "activation: null\ndata: {seed: 7, in_features: 64}\n")


def token(text: str) -> dict[str, str]:
    """``text`` as a link's query parameters: YAML text -> zlib -> base64url, as link.py does."""
    packed = zlib.compress(text.encode("utf-8"), 9)
    return {"s": base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")}


def node_count(text: str) -> int:
    """Every node of the YAML document (mappings, sequences, keys and values), counted by
    walking PyYAML's own node graph, independently of the decoder's counter."""
    def walk(node) -> int:
        if isinstance(node, yaml.MappingNode):
            return 1 + sum(walk(k) + walk(v) for k, v in node.value)
        if isinstance(node, yaml.SequenceNode):
            return 1 + sum(walk(item) for item in node.value)
        return 1
    return walk(yaml.compose(text, Loader=yaml.SafeLoader))


def test_the_hand_built_token_is_what_encode_state_makes():
    state = SharedState("kl_bins: 512\n", "kl_bins: 256\n", None, DataSettings(seed=5))
    doc = {"v": 1, "weight": state.weight_yaml, "outputs": state.outputs_yaml,
           "activation": None, "activation_enabled": False,
           "data": dataclasses.asdict(state.settings)}
    assert token(yaml.safe_dump(doc, sort_keys=False)) == encode_state(state)
    good = decode_state(token(GOOD))
    assert good.settings.seed == 7 and good.settings.in_features == 64


# --- the node cap ----------------------------------------------------------------------------

def test_the_node_cap_refuses_one_value_over_and_accepts_exactly_at_it(monkeypatch):
    nodes = node_count(GOOD)  # the mapping, its 5 keys and 5 values, 2 keys and 2 in data
    assert nodes == 15
    monkeypatch.setattr(link, "MAX_NODES", nodes)
    assert decode_state(token(GOOD)).settings.seed == 7
    monkeypatch.setattr(link, "MAX_NODES", nodes - 1)
    with pytest.raises(ShareError, match=f"more than {nodes - 1} values"):
        decode_state(token(GOOD))


def test_the_real_node_cap_is_named_when_a_document_passes_it():
    assert link.MAX_NODES == 256
    just_under = "[" + ", ".join(["0"] * (link.MAX_NODES - 1)) + "]"  # the list + 255 = 256
    just_over = "[" + ", ".join(["0"] * link.MAX_NODES) + "]"         # 257
    assert node_count(just_under) == link.MAX_NODES
    assert node_count(just_over) == link.MAX_NODES + 1
    with pytest.raises(ShareError, match="holds more than 256 values"):
        decode_state(token(just_over))
    with pytest.raises(ShareError) as under:  # read in full, then refused as not a mapping
        decode_state(token(just_under))
    assert "a link holds a mapping" in str(under.value) and "256" not in str(under.value)


def test_a_large_state_document_stops_at_the_node_cap_not_later():
    padded = GOOD + "pad: [" + ", ".join(["0"] * 400) + "]\n"  # over the cap before any check
    with pytest.raises(ShareError, match="more than 256 values"):
        decode_state(token(padded))


# --- the nesting cap -------------------------------------------------------------------------

def test_the_nesting_cap_is_named_one_level_over_it():
    depth = link.MAX_FLOW_DEPTH
    with pytest.raises(ShareError, match=f"nested more than {depth} levels deep"):
        decode_state(token("[" * (depth + 1) + "]" * (depth + 1)))
    with pytest.raises(ShareError, match="a link holds a mapping"):  # at the cap: read in full
        decode_state(token("[" * depth + "]" * depth))


# --- bool is not an integer ------------------------------------------------------------------

INT_SETTINGS = [f.name for f in dataclasses.fields(DataSettings) if type(f.default) is int]


def test_the_integer_settings_are_the_expected_ones():
    assert INT_SETTINGS == ["in_features", "out_features", "seed", "num_batches", "batch_size"]


@pytest.mark.parametrize("name", INT_SETTINGS)
@pytest.mark.parametrize("flag,value", [("true", True), ("yes", True), ("on", True),
                                        ("false", False)])
def test_bool_where_an_integer_setting_belongs_is_refused(name, flag, value):
    # true == 1 is inside every setting's range (false == 0 is inside the seed's): only the
    # type check can refuse them.
    text = GOOD.replace("{seed: 7, in_features: 64}", f"{{{name}: {flag}}}")
    with pytest.raises(ShareError, match=f"data setting {name} must be an integer, got {value}"):
        decode_state(token(text))


@pytest.mark.parametrize("value,shown", [("1.0", "1.0"), ("'3'", "'3'"), ("[1]", r"\[1\]")])
def test_other_non_integers_for_the_seed_are_refused(value, shown):
    with pytest.raises(ShareError, match=f"seed must be an integer, got {shown}"):
        decode_state(token(GOOD.replace("seed: 7", f"seed: {value}")))


@pytest.mark.parametrize("value", ["1", "0", "'true'"])
def test_activation_enabled_takes_a_bool_only(value):
    text = GOOD.replace("activation: null", f"activation: null\nactivation_enabled: {value}")
    with pytest.raises(ShareError, match="activation_enabled must be true or false"):
        decode_state(token(text))


# --- the version -----------------------------------------------------------------------------

@pytest.mark.parametrize("version,said", [
    ("2", "is version 2;"),
    ("0", "is version 0;"),
    ("true", "is version True;"),   # == 1 in Python
    ("1.0", "is version 1.0;"),     # == 1 too
    ("'1'", "is version '1';"),
    ("null", "is version None;"),
    (None, "has no version 'v';"),
], ids=["2", "0", "true", "float", "text", "null", "missing"])
def test_a_state_of_another_version_is_refused_and_the_message_names_version_1(version, said):
    # Everything but the version is valid, so only the version check can refuse it.
    text = GOOD.replace("v: 1\n", "" if version is None else f"v: {version}\n")
    with pytest.raises(ShareError) as info:
        decode_state(token(text))
    message = str(info.value)
    assert said in message and "opens version 1 links only" in message, message


# --- the document must be a mapping ----------------------------------------------------------

@pytest.mark.parametrize("text,kind", [
    ("[not-a-state]", "not a list"),
    ("- v: 1\n", "not a list"),
    ("just some text\n", "not the text 'just some text'"),
    ("42\n", "not an int"),
    ("", "not nothing"),
    ("null\n", "not nothing"),
], ids=["flow-list", "block-list", "text", "number", "empty", "null"])
def test_a_document_that_is_not_a_mapping_is_refused_by_the_mapping_check(text, kind):
    with pytest.raises(ShareError) as info:
        decode_state(token(text))
    message = str(info.value)
    assert message.startswith("a link holds a mapping of the explorer's state") and kind in message
    assert "version" not in message, message
