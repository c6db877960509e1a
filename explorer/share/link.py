"""Shareable links: the whole explorer state in one URL query parameter.

The state (the three YAML editor texts, the activation toggle and the sample-data settings)
is YAML, zlib-compressed and base64url-encoded into ``?s=...``. Decoding is capped at every
step (parameter length, decompressed size, YAML nesting and node count), reads plain YAML only
(the outer document with a hardened SafeLoader, each editor text with the config loader) and
validates every field, so a bad or hostile link gives a `ShareError` with a clear message,
never a crash: no other exception escapes `decode_state`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import warnings
import zlib

import yaml

from explorer.core.pipeline import DataSettings
from explorer.data import sources, synthetic
from explorer.data.digits import LINEAR_NAMES
from quantlib.config_loader import MAX_CONFIG_BYTES, parse_section, parse_transform
from quantlib.errors import ConfigError, show_value

PARAM = "s"
VERSION = 1
MAX_PARAM_CHARS = 16_384
MAX_STATE_BYTES = 64 * 1024
EDITORS = ("weight", "outputs", "activation")
MAX_FLOW_DEPTH = 16
MAX_NODES = 256
MAX_MESSAGE_CHARS = 400  # an error quotes at most this much of what the link says
# ``bit_type.name`` is free text to the loader, and the app shows it as Markdown (Teach tab) and
# in plot titles (Plotly reads a little HTML): a link, which puts it on someone else's page,
# may carry plain labels only (int8, uint4, my_format, fp8-e4m3).


class ShareError(ValueError):
    """A link that cannot be opened; the message says why."""


@dataclasses.dataclass(frozen=True)
class SharedState:
    """What a link carries: the editor texts, the activation toggle and the data settings.

    ``activation_yaml`` may be None (no activation text); ``activation_enabled`` None means
    "on exactly when there is an activation text" and is normalised to that bool.
    """

    weight_yaml: str
    outputs_yaml: str
    activation_yaml: str | None
    settings: DataSettings
    activation_enabled: bool | None = None
    transform_yaml: str | None = None  # the transform: section's body; None: no transform

    def __post_init__(self) -> None:
        if self.activation_enabled is None:
            object.__setattr__(self, "activation_enabled", self.activation_yaml is not None)
        if self.activation_enabled and self.activation_yaml is None:
            raise ShareError("the activation section is on but has no YAML text")


def encode_state(state: SharedState) -> dict[str, str]:
    """-> query parameters ``{"s": ...}`` for ``st.query_params``; raises `ShareError` for a
    state `decode_state` would refuse (an invalid text, a name that is not a plain label)."""
    for name, text in zip(EDITORS, (state.weight_yaml, state.outputs_yaml,
                                    state.activation_yaml)):
        if text is not None:
            _check_text(text, name, "the")
    if state.transform_yaml is not None:
        _check_transform(state.transform_yaml, "the")
    doc = {"v": VERSION, "weight": state.weight_yaml, "outputs": state.outputs_yaml,
           "activation": state.activation_yaml,
           "activation_enabled": state.activation_enabled,
           "data": dataclasses.asdict(state.settings)}
    if state.transform_yaml is not None:  # absent otherwise: older links stay byte-identical
        doc["transform"] = state.transform_yaml
    raw = yaml.safe_dump(doc, sort_keys=False).encode("utf-8")
    token = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")
    if len(token) > MAX_PARAM_CHARS:
        raise ShareError(f"the state is too large for a link ({len(token):,} characters; "
                         f"limit {MAX_PARAM_CHARS:,}); shorten the YAML comments")
    return {PARAM: token}


def decode_state(params: dict[str, str]) -> SharedState:
    """Query parameters -> `SharedState`; raises `ShareError` for anything wrong."""
    token = params.get(PARAM)
    if token is None:
        raise ShareError(f"the link has no '{PARAM}' parameter")
    if not isinstance(token, str) or len(token) > MAX_PARAM_CHARS:
        raise ShareError(f"the link's state is over {MAX_PARAM_CHARS:,} characters")
    try:
        # strict base64url (no stray characters) and one complete zlib stream, nothing after
        packed = base64.b64decode((token + "=" * (-len(token) % 4)).translate(_URLSAFE),
                                  validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES or inflater.unconsumed_tail:
            raise ShareError(f"the link's state unpacks to over {MAX_STATE_BYTES:,} bytes")
        if not inflater.eof or inflater.unused_data:
            raise ShareError("the link is damaged (its state is cut short or followed by "
                             "extra data)")
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError) as err:
        if isinstance(err, ShareError):
            raise
        raise ShareError("the link is damaged (its state is not valid encoded data)") from None
    try:
        return _decode_document(_load_yaml(text))
    except ShareError as err:  # values quoted from the link are shortened, and so is the whole
        message = str(err)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS - 3] + "..."
        raise ShareError(message) from None


_URLSAFE = str.maketrans("-_", "+/")


def _decode_document(doc: object) -> SharedState:
    if not isinstance(doc, dict):
        raise ShareError(f"a link holds a mapping of the explorer's state (v, weight, outputs, "
                         f"activation, data), not {_kind(doc)}")
    version = doc.get("v")
    if type(version) is not int or version != VERSION:  # not true or 1.0, which equal 1
        said = "has no version 'v'" if "v" not in doc else f"is version {show_value(version, 40)}"
        raise ShareError(f"the link's state {said}; this explorer opens version {VERSION} "
                         f"links only")
    texts = {}
    for name in EDITORS:
        value = doc.get(name)
        if value is None and name == "activation":
            texts[name] = None
            continue
        if not isinstance(value, str):
            raise ShareError(f"the link's '{name}' config must be YAML text")
        _check_text(value, name, "the link's")
        texts[name] = value
    enabled = doc.get("activation_enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ShareError(f"the link's activation_enabled must be true or false, got "
                         f"{show_value(enabled, 40)}")
    transform = doc.get("transform")
    if transform is not None:
        if not isinstance(transform, str):
            raise ShareError("the link's 'transform' section must be YAML text")
        _check_transform(transform, "the link's")
    return SharedState(texts["weight"], texts["outputs"], texts["activation"],
                       _settings(doc.get("data")), enabled, transform)


def _check_transform(text: str, whose: str) -> None:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ShareError(f"{whose} transform section is over {MAX_CONFIG_BYTES:,} bytes")
    try:
        parse_transform(text)
    except ConfigError as err:
        raise ShareError(f"{whose} transform section is invalid: {err}") from None


def _kind(value: object) -> str:
    """'a list', 'the text ...', 'nothing': what a link's document is, for a message."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {show_value(value, 40)}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _check_text(text: str, name: str, whose: str) -> None:
    """Raise `ShareError` unless ``text`` is a valid ``name`` section (its ``bit_type.name``
    included: `BitType` accepts plain labels only, so no markup reaches another page)."""
    try:
        with warnings.catch_warnings():  # the editor shows a text's warnings once loaded
            warnings.simplefilter("ignore")
            parse_section(text, name)
    except ConfigError as err:
        raise ShareError(f"{whose} {name} config is invalid: {err}") from None


class _StateLoader(yaml.SafeLoader):
    """SafeLoader for the link's outer document: no aliases (no alias bombs), at most
    `MAX_FLOW_DEPTH` levels of [ ] / { } (PyYAML's scanner is quadratic in that nesting), at
    most `MAX_NODES` nodes (a real state has about 20), so a hostile link stops early, and no
    duplicate keys (which would let a link show one value and use another)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise ShareError(f"the link's state repeats the key "
                                 f"{show_value(str(key), 40)}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def fetch_flow_collection_start(self, TokenClass):
        if self.flow_level >= MAX_FLOW_DEPTH:
            raise ShareError(f"the link's state is nested more than {MAX_FLOW_DEPTH} levels "
                             f"deep")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed")
        self._nodes = getattr(self, "_nodes", 0) + 1
        if self._nodes > MAX_NODES:
            raise ShareError(f"the link's state holds more than {MAX_NODES} values (a state "
                             f"has about 20)")
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> object:
    """Parse the outer document; any failure becomes `ShareError`.

    SafeLoader's constructors let plain Python errors out for hostile scalars (``2001-13-45``
    and ``!!int abc`` raise ValueError, a 5000-digit integer trips the int-string limit, deep
    nesting raises RecursionError), so every exception is caught here.
    """
    loader = None
    try:
        loader = _StateLoader(text)  # its reader already rejects control characters
        return loader.get_single_data()
    except ShareError:
        raise
    except Exception:  # noqa: BLE001 - whatever PyYAML raises, the link is unreadable
        raise ShareError("the link's state is not valid YAML") from None
    finally:
        if loader is not None:
            loader.dispose()


_SETTING_CHOICES = {"weight_source": synthetic.WEIGHT_SOURCES,
                    "input_source": synthetic.INPUT_SOURCES,
                    "source": sources.SOURCES,
                    "model_layer": LINEAR_NAMES}


def _settings(data: object) -> DataSettings:
    if not isinstance(data, dict):
        raise ShareError("the link has no sample-data settings")
    fields = {f.name: f for f in dataclasses.fields(DataSettings)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        shown = ", ".join(show_value(name, 40) for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ShareError(f"unknown data setting(s) {shown}{more}; valid: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        default = fields[name].default
        if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ShareError(f"data setting {name} must be an integer, got {show_value(value, 40)}")
        if isinstance(default, str) and not isinstance(value, str):
            raise ShareError(f"data setting {name} must be text, got {show_value(value, 40)}")
        if name in _SETTING_CHOICES and value not in _SETTING_CHOICES[name]:
            raise ShareError(f"data setting {name} {show_value(value, 40)} is not one of "
                             f"{', '.join(_SETTING_CHOICES[name])}")
        values[name] = value
    settings = DataSettings(**values)
    try:  # the free-form strings: MiniLM layer name, upload digests and tensor name
        sources.check_source_settings(settings)
    except ValueError as err:
        raise ShareError(f"data setting {err}") from None
    limits = {"in_features": synthetic.MAX_FEATURES, "out_features": synthetic.MAX_FEATURES,
              "num_batches": synthetic.MAX_BATCHES, "batch_size": synthetic.MAX_BATCH_ROWS,
              "seed": 2**31 - 1}  # the sidebar's seed widget range
    for name, cap in limits.items():
        value = getattr(settings, name)
        low = 0 if name == "seed" else 1
        if not low <= value <= cap:
            raise ShareError(f"data setting {name} must be from {low} to {cap}, got {value}")
    return settings
