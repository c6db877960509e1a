"""Read and write quantization configs as YAML.

The document has the sections ``weight``, ``outputs`` (``output`` is accepted too) and an
optional ``activation``; each maps the `QuantConfig` field names to values::

    weight:
      calibration_mode: channel_wise
      bit_type: {bits: 8, signed: true, name: int8}
      observer_type: MinmaxObserver
      quantization_method: Uniform

Float formats are picked by name, with ``bits``/``signed`` derived (``bit_type: {name:
mxfp4}``), and ``calibration_mode: block_wise`` takes ``block_size: N``.

An optional ``transform:`` section (`quantlib.transforms.config`) applies to the layer; it is
returned under ``"transform"`` as a `TransformConfig`, or None when the document has none.

Every problem raises `ConfigError` naming the dotted field, the line and the valid choices.
Only plain YAML is read (`yaml.SafeLoader`, no aliases, no duplicate keys, size-capped).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import warnings
from pathlib import Path

import yaml

from quantlib.bit_type import BitType, looks_like_unknown_format
from quantlib.errors import ConfigError, show_value
from quantlib.formats.registry import valid_names
from quantlib.quant_config import BIT_TYPE_FIELDS, FIELD_NAMES, QuantConfig
from quantlib.transforms.config import TransformConfig, transform_from_section

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "MAX_CONFIG_BYTES",
    "dump_config_to_yaml",
    "load_config_from_string",
    "load_config_from_yaml",
    "parse_section",
    "parse_transform",
    "section_to_yaml",
]

# A real config is under 1 KB. 16 KiB keeps the worst case (a document of tiny flow-list
# items, parsed by PyYAML's pure-Python SafeLoader) well under a second.
MAX_CONFIG_BYTES = 16 * 1024
SECTIONS = ("weight", "outputs", "activation")
TRANSFORM = "transform"  # the layer's optional transform section (not a QuantConfig)
_ALL_SECTIONS = (*SECTIONS, TRANSFORM)
_SECTION_ALIASES = {"output": "outputs"}
_RESULT_KEYS = {"weight": "weight", "outputs": "output", "activation": "activation"}
_NAMED_FORMAT = re.compile(r"^(u?)int(\d+)$")


class ConfigWarning(UserWarning):
    """A config that loads but probably says something unintended."""


def load_config_from_yaml(path: str | Path) -> dict[str, QuantConfig | TransformConfig | None]:
    """Load a config file -> ``{'output': QuantConfig, 'weight': QuantConfig,
    'activation': QuantConfig | None, 'transform': TransformConfig | None}``."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would block or never end
            raise ConfigError(f"cannot read config file {str(path)!r}: not a regular file")
        if info.st_size == 0:  # empty, or a /proc file such as /proc/kmsg (blocks when read)
            raise ConfigError(f"the document is empty; expected the sections weight and "
                              f"outputs ({str(path)!r} has a size of 0: an empty file, or a "
                              "special file such as /proc/kmsg, which is not read)")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(_too_big(info.st_size))
        # Non-blocking, and checked again on the open file: a FIFO swapped in after stat()
        # cannot hang the read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ConfigError(f"cannot read config file {str(path)!r}: not a regular file")
            data = file.read(MAX_CONFIG_BYTES + 1)  # the file may grow after stat()
    except OSError as err:
        raise ConfigError(f"cannot read config file {str(path)!r}: {err.strerror}") from None
    except ValueError as err:  # e.g. an embedded NUL byte in the path
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"cannot read config file {str(path)!r}: {err}") from None
    return load_config_from_string(_decode(data))


def load_config_from_string(text: str | bytes
                            ) -> dict[str, QuantConfig | TransformConfig | None]:
    """Parse a whole YAML document (the editor's text) into the three configs and the
    transform (``"transform"``: a `TransformConfig`, None when the section is absent)."""
    tree, lines = _parse_yaml(text)
    if tree is None:
        raise ConfigError("the document is empty; expected the sections weight and outputs")
    if not isinstance(tree, dict):
        raise ConfigError(
            f"the document must be a mapping with the sections weight, outputs and "
            f"(optionally) activation; got a {_kind(tree)}",
            line=lines.get(""),
        )
    if not any(_SECTION_ALIASES.get(key, key) in SECTIONS for key in tree):
        # Not a config at all (a .env file, a YAML of something else): say so without
        # echoing its keys, which may be anything (a token on the file's first line).
        raise ConfigError(
            f"this is not a quantization config: it has none of the sections "
            f"{', '.join(SECTIONS)} (or output) at the top level",
            line=lines.get(next(iter(tree)), None) if tree else None)
    sections: dict[str, object] = {}
    for key, value in tree.items():
        name = _SECTION_ALIASES.get(key, key)
        if name not in _ALL_SECTIONS:
            raise ConfigError(
                f"unknown section{_suggest(key, _ALL_SECTIONS)}; "
                f"valid sections: {', '.join(_ALL_SECTIONS)} (or output)",
                _short(str(key)),
                lines.get(str(key)),
            )
        if name in sections:
            raise ConfigError("give either 'outputs' or 'output', not both", key, lines.get(key))
        sections[name] = (key, value)
    result: dict = {"output": None, "weight": None, "activation": None, TRANSFORM: None}
    for name in SECTIONS:
        if name not in sections:
            if name == "activation":
                continue
            raise ConfigError(f"missing section '{name}'; the document needs weight and outputs")
        key, body = sections[name]
        if name == "activation" and body is None:
            continue
        result[_RESULT_KEYS[name]] = _build_config(body, key, lines)
    if TRANSFORM in sections:
        result[TRANSFORM] = transform_from_section(sections[TRANSFORM][1], lines)
    return result


def parse_section(text: str | bytes, section: str) -> QuantConfig:
    """Parse one section's body (the fields, without the ``weight:`` header)."""
    tree, lines = _parse_yaml(text)
    if tree is None:
        raise ConfigError("the section is empty; give at least observer_type and bit_type", section)
    return _build_config(tree, section, {f"{section}.{k}" if k else section: v
                                         for k, v in lines.items()})


def parse_transform(text: str | bytes) -> TransformConfig:
    """Parse the ``transform:`` section's body (without the header); empty -> the defaults."""
    tree, lines = _parse_yaml(text)
    lines = {f"{TRANSFORM}.{k}".rstrip("."): v for k, v in lines.items()}
    return transform_from_section(tree, lines)


def section_to_yaml(config: QuantConfig) -> str:
    """One section's body as YAML text, fields in declaration order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)


def dump_config_to_yaml(configs: dict[str, QuantConfig | TransformConfig | None]) -> str:
    """The loader's dict back as a document `load_config_from_string` reads to equal configs."""
    doc = {"weight": configs["weight"].to_dict(), "outputs": configs["output"].to_dict()}
    if configs.get("activation") is not None:
        doc["activation"] = configs["activation"].to_dict()
    if configs.get(TRANSFORM) is not None:
        doc[TRANSFORM] = configs[TRANSFORM].to_dict()
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


# --- YAML parsing with line numbers -------------------------------------------------------


MAX_FLOW_DEPTH = 64  # PyYAML's scanner is quadratic in [ / { nesting: 4000 levels take > 1 s


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (no alias bombs; configs never need them) and deep
    flow nesting."""

    def fetch_flow_collection_start(self, TokenClass):
        if self.flow_level >= MAX_FLOW_DEPTH:
            raise ConfigError(f"the YAML nests [ ] or {{ }} more than {MAX_FLOW_DEPTH} levels "
                              "deep", line=self.get_mark().line + 1)
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(
                "YAML aliases (*name) are not allowed in configs; write the value out",
                line=mark.line + 1,
            )
        return super().compose_node(parent, index)


def _parse_yaml(text: str | bytes) -> tuple[object, dict[str, int]]:
    """YAML text -> (plain Python tree, {dotted path: 1-based line})."""
    if isinstance(text, bytes):
        text = _decode(text)
    if not isinstance(text, str):
        raise ConfigError(f"expected YAML text, got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(_too_big(size))
    if "\x00" in text:
        raise ConfigError("the text contains binary data (NUL bytes); a config is YAML text")
    loader = None
    try:
        loader = _PlainLoader(text)
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        tree = None if node is None else _construct(loader, node, "", lines)
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if "\t" in text and "\\t" in problem:
            problem += "; indent with spaces, not tabs"
        raise ConfigError(f"invalid YAML: {problem}",
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return tree, lines


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map",
               yaml.SequenceNode: "tag:yaml.org,2002:seq"}
# Scalars: the plain types (explicit !!str / !!int ... too), never !!binary, !!python/...,
# or local tags. Timestamps are read so that a date gets a field error, not a tag error.
_PLAIN_SCALAR_TAGS = {f"tag:yaml.org,2002:{kind}"
                      for kind in ("str", "int", "float", "bool", "null", "timestamp")}


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: str, lines: dict) -> object:
    lines.setdefault(path, node.start_mark.line + 1)
    plain_tag = _PLAIN_TAGS.get(type(node))
    allowed = node.tag == plain_tag if plain_tag is not None else node.tag in _PLAIN_SCALAR_TAGS
    if not allowed:
        raise ConfigError(f"YAML tag {node.tag!r} is not allowed; configs hold plain values only",
                          path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = _construct(loader, key_node, path, {})
            if not isinstance(key, str):
                raise ConfigError(f"keys must be names, got {show_value(key)}", path,
                                  key_node.start_mark.line + 1)
            child = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError("duplicate key; give each field once", child,
                                  key_node.start_mark.line + 1)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(loader, value_node, child, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, f"{path}[{i}]", lines)
                for i, item in enumerate(node.value)]
    return _construct_scalar(loader, node, path)


class _Unreadable:
    """A scalar SafeLoader failed to build. Every field check rejects it, so the error still
    names the field and its valid choices."""

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text, reason

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 24 else f"{self.text[:21]}..."
        return f"{text!r} ({self.reason})"


def _construct_scalar(loader: yaml.SafeLoader, node: yaml.Node, path: str) -> object:
    """SafeLoader's value for a scalar (or a key); `_Unreadable` where its constructor fails.

    PyYAML lets plain Python errors out of its constructors: ``2001-13-45`` (ValueError from
    datetime), ``!!bool x`` (KeyError), ``!!timestamp x`` (AttributeError), ``0x_`` and
    integers past ``sys.get_int_max_str_digits()`` (ValueError).
    """
    if node.tag in _NUMBER_TAGS and isinstance(node.value, str):
        reason = _yaml11_number_form(node.value, node.tag)
        if reason is not None:
            return _Unreadable(node.value, reason)
    try:
        return loader.construct_object(node, deep=True)
    except (ConfigError, yaml.YAMLError, RecursionError):
        raise
    except Exception as err:  # noqa: BLE001 - every other constructor failure is bad input
        kind = str(node.tag).rsplit(":", 1)[-1]
        too_long = "digits" in str(err)
        reason = "too many digits" if too_long else f"not a valid {kind}"
        return _Unreadable(node.value if isinstance(node.value, str) else "", reason)


_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_OCTAL = re.compile(r"^[-+]?0[0-9_]+$")


def _yaml11_number_form(text: str, tag: str) -> str | None:
    """Why a number in a YAML 1.1-only form is refused, or None.

    PyYAML follows YAML 1.1, where ``016`` is octal (14) and ``1:0:0`` is base 60 (3600);
    YAML 1.2 and every other reader see 16 and a string. Such values would change silently,
    so they are refused. Explicit forms (``0x10``, ``0b11``, ``1_000``) mean what they say."""
    text = text.strip()
    if ":" in text:
        return "a YAML 1.1 base-60 number; write it as a plain decimal"
    if tag.endswith(":int") and _OCTAL.match(text):
        return "a YAML 1.1 octal number; write it without leading zeros"
    return None


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _decode(data: bytes) -> str:
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(_too_big(len(data)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text; a config must be a YAML text file") from None
    if "\x00" in text:
        raise ConfigError("the file contains binary data; a config must be a YAML text file")
    return text


def _too_big(size: int) -> str:
    return f"the config is {size:,} bytes; the limit is {MAX_CONFIG_BYTES:,} bytes"


# --- sections -> QuantConfig ---------------------------------------------------------------


def _build_config(body: object, section: str, lines: dict[str, int]) -> QuantConfig:
    if not isinstance(body, dict):
        raise ConfigError(
            f"must be a mapping of fields ({', '.join(FIELD_NAMES)}), got a {_kind(body)}",
            section, lines.get(section))
    kwargs = {}
    for key, value in body.items():
        if key not in FIELD_NAMES:
            hint = " (bits, signed and name go under bit_type)" if key in BIT_TYPE_FIELDS else ""
            raise ConfigError(
                f"unknown field{_suggest(key, FIELD_NAMES)}{hint}; "
                f"valid fields: {', '.join(FIELD_NAMES)}",
                f"{section}.{key}", lines.get(f"{section}.{key}"))
        kwargs[key] = value
    if "bit_type" in kwargs:
        kwargs["bit_type"] = _build_bit_type(kwargs["bit_type"], f"{section}.bit_type", lines)
    try:
        return QuantConfig(**kwargs)
    except ConfigError as err:
        path = f"{section}.{err.path}" if err.path else section
        # a rule may name a field the section left at its default: point at the section
        raise ConfigError(err.reason, path, lines.get(path, lines.get(section))) from None


def _build_bit_type(body: object, path: str, lines: dict[str, int]) -> BitType:
    if not isinstance(body, dict):
        raise ConfigError(f"must be a mapping with bits, signed and name; got a {_kind(body)}",
                          path, lines.get(path))
    for key in body:
        if key not in BIT_TYPE_FIELDS:
            raise ConfigError(
                f"unknown field{_suggest(key, BIT_TYPE_FIELDS)}; valid fields: bits, signed, name",
                f"{path}.{key}", lines.get(f"{path}.{key}"))
    name = body.get("name")
    try:
        is_float = BitType(name=name).is_float if isinstance(name, str) and name else False
        if "bits" not in body and not is_float:
            raise ConfigError("missing; give bits as an integer from 2 to 16, or a float "
                              f"format as name ({valid_names()})", "bits")
        if "bits" in body and body["bits"] is None:  # None means "derive" to BitType only
            raise ConfigError("must be an integer from 2 to 16, got None", "bits")
        if "signed" in body and body["signed"] is None:
            raise ConfigError("must be true or false, got None", "signed")
        bit_type = BitType(body.get("bits"), body.get("signed", None if is_float else True),
                           "" if name is None else name)
    except ConfigError as err:
        field_path = f"{path}.{err.path}"
        raise ConfigError(err.reason, field_path,
                          lines.get(field_path, lines.get(path))) from None
    if looks_like_unknown_format(bit_type.name):
        warnings.warn(
            f"{path}.name: {bit_type.name!r} is not a number format (valid formats: "
            f"{valid_names()}); it is read as a label of {bit_type.default_name}",
            ConfigWarning, stacklevel=4)
    match = _NAMED_FORMAT.match(bit_type.name)
    if match and bit_type.name != bit_type.default_name:
        warnings.warn(
            f"{path}.name: {bit_type.name!r} does not match bits={bit_type.bits}, "
            f"signed={str(bit_type.signed).lower()}; the range follows bits/signed "
            f"({bit_type.default_name}, codes {bit_type.qmin}..{bit_type.qmax})",
            ConfigWarning, stacklevel=4)
    return bit_type


def _suggest(key: object, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), choices, n=1)
    shown = _short(str(key)) if isinstance(key, str) else key
    return f" {shown!r} (did you mean {close[0]!r}?)" if close else f" {shown!r}"


def _kind(value: object) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
             type(None): "null value", _Unreadable: "unreadable value"}
    return names.get(type(value), type(value).__name__)
