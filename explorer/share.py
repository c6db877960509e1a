"""Shareable links: the whole explorer state in one URL query parameter.

The state (the three YAML editor texts and the sample-data settings) is YAML, zlib-compressed
and base64url-encoded into ``?s=...``. Decoding is capped at every step (parameter length,
decompressed size), parses with the config loader's safe YAML reader only, and validates every
field, so a bad or hostile link gives a `ShareError` with a clear message, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import zlib

import yaml

from explorer import samples
from explorer.pipeline import DataSettings
from quantlib.config_loader import parse_section
from quantlib.errors import ConfigError

PARAM = "s"
VERSION = 1
MAX_PARAM_CHARS = 16_384
MAX_STATE_BYTES = 64 * 1024
EDITORS = ("weight", "outputs", "activation")


class ShareError(ValueError):
    """A link that cannot be opened; the message says why."""


@dataclasses.dataclass(frozen=True)
class SharedState:
    """What a link carries: editor texts (activation None when off) and data settings."""

    weight_yaml: str
    outputs_yaml: str
    activation_yaml: str | None
    settings: DataSettings


def encode_state(state: SharedState) -> dict[str, str]:
    """-> query parameters ``{"s": ...}`` for ``st.query_params``."""
    doc = {"v": VERSION, "weight": state.weight_yaml, "outputs": state.outputs_yaml,
           "activation": state.activation_yaml,
           "data": dataclasses.asdict(state.settings)}
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
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES or inflater.unconsumed_tail:
            raise ShareError(f"the link's state unpacks to over {MAX_STATE_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError) as err:
        if isinstance(err, ShareError):
            raise
        raise ShareError("the link is damaged (its state is not valid encoded data)") from None
    try:
        doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        raise ShareError("the link's state is not valid YAML") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise ShareError(f"the link's state is not a version-{VERSION} explorer state")
    texts = {}
    for name in EDITORS:
        value = doc.get(name)
        if value is None and name == "activation":
            texts[name] = None
            continue
        if not isinstance(value, str):
            raise ShareError(f"the link's '{name}' config must be YAML text")
        try:
            parse_section(value, name)
        except ConfigError as err:
            raise ShareError(f"the link's {name} config is invalid: {err}") from None
        texts[name] = value
    return SharedState(texts["weight"], texts["outputs"], texts["activation"],
                       _settings(doc.get("data")))


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no alias bombs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed")
        return super().compose_node(parent, index)


_SETTING_CHOICES = {"weight_source": samples.WEIGHT_SOURCES,
                    "input_source": samples.INPUT_SOURCES}


def _settings(data: object) -> DataSettings:
    if not isinstance(data, dict):
        raise ShareError("the link has no sample-data settings")
    fields = {f.name: f for f in dataclasses.fields(DataSettings)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ShareError(f"unknown data setting(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        default = fields[name].default
        if isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ShareError(f"data setting {name} must be an integer, got {value!r}")
        if name in _SETTING_CHOICES and value not in _SETTING_CHOICES[name]:
            raise ShareError(f"data setting {name} {value!r} is not one of "
                             f"{', '.join(_SETTING_CHOICES[name])}")
        values[name] = value
    settings = DataSettings(**values)
    limits = {"in_features": samples.MAX_FEATURES, "out_features": samples.MAX_FEATURES,
              "num_batches": samples.MAX_BATCHES, "batch_size": samples.MAX_BATCH_ROWS,
              "seed": 2**32 - 1}
    for name, cap in limits.items():
        value = getattr(settings, name)
        low = 0 if name == "seed" else 1
        if not low <= value <= cap:
            raise ShareError(f"data setting {name} must be from {low} to {cap}, got {value}")
    return settings
