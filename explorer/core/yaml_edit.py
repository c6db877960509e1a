"""Text surgery on config YAML that keeps the user's comments and layout.

- `set_field(text, path, value)`: rewrite one field's value in a section body (``("bit_type",
  "bits")``), in block or flow style; append the field when it is absent.
- `get_field(text, path)`: the field's current scalar text, or None.
- `delete_field(text, path)`: remove one field's entry (``bit_type.bits`` when a float format
  derives it), every other line kept.
- `split_document(text)`: a whole config document -> one body text per section (comments kept).
- `join_document(bodies)`: section bodies -> one document the loader reads.

Parsing uses ``yaml.compose`` (a SafeLoader, `_EditLoader`) only for node positions; values are
validated by `quantlib.config_loader`, never here. Text nested deeper than `MAX_DEPTH` (block or
flow) is treated as invalid YAML, so a hostile editor text can neither exhaust Python's stack
(RecursionError) nor keep PyYAML's scanner busy: `get_field` gives None and `set_field` falls
back to its line rewrite.
"""

from __future__ import annotations

import json
import re
import textwrap

import yaml

SECTION_HEADERS = ("weight", "outputs", "activation")
_PLAIN_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(.*)$")
MAX_DEPTH = 64  # a config nests 2 levels (bit_type.bits)


class _EditLoader(yaml.SafeLoader):
    """SafeLoader whose composer and scanner stop past `MAX_DEPTH` levels of nesting."""

    def fetch_flow_collection_start(self, TokenClass):
        if self.flow_level >= MAX_DEPTH:  # the scanner is quadratic in flow depth
            raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def format_scalar(value: object) -> str:
    """A Python value as a YAML scalar: ``true``, ``8``, ``0.9995``, ``MinmaxObserver``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(round(value, 10))
    text = str(value)
    if _PLAIN_WORD.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def get_field(text: str, path: tuple[str, ...]) -> str | None:
    """The scalar text of ``path`` in a section body, or None if absent, not a scalar, or the
    text is not valid YAML."""
    root = _compose(text)
    node = root
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        pair = _find(node, key)
        if pair is None:
            return None
        node = pair[1]
    return node.value if isinstance(node, yaml.ScalarNode) else None


def set_field(text: str, path: tuple[str, ...], value: object) -> str | None:
    """Return ``text`` with the field at ``path`` set to ``value``; every other line is kept.

    An absent field is appended to its mapping (block or flow style). When the text is not
    valid YAML, the first ``key: value`` line for the field is rewritten; None when even that
    is impossible (the caller keeps the text unchanged).
    """
    scalar = format_scalar(value)
    try:
        root = _compose_or_raise(text)
    except (yaml.YAMLError, RecursionError):
        return _set_by_line(text, path[-1], scalar)
    if root is None:
        return _append_lines(text, _render(path, scalar, 0))
    if not isinstance(root, yaml.MappingNode):
        return None
    node = root
    for depth, key in enumerate(path):
        pair = _find(node, key)
        if pair is None:
            return _insert(text, node, path[depth:], scalar)
        value_node = pair[1]
        last = depth == len(path) - 1
        if last or not isinstance(value_node, yaml.MappingNode):
            new_value = scalar if last else _flow(path[depth + 1:], scalar)
            return _replace_node(text, value_node, new_value)
        node = value_node
    return None  # pragma: no cover - the loop always returns


def delete_field(text: str, path: tuple[str, ...]) -> str | None:
    """Return ``text`` without the field at ``path`` (its whole entry: block lines or a flow
    ``key: value`` item), every other line kept; ``text`` unchanged when the field is absent;
    None when the text is not valid YAML."""
    root = _compose(text)
    if root is None and text.strip():
        return None
    node = root
    for depth, key in enumerate(path):
        if not isinstance(node, yaml.MappingNode):
            return text
        pair = _find(node, key)
        if pair is None:
            return text
        if depth < len(path) - 1:
            node = pair[1]
            continue
        index = node.value.index(pair)
        if node.flow_style:
            items = node.value
            if index + 1 < len(items):
                start, end = pair[0].start_mark.index, items[index + 1][0].start_mark.index
            elif index > 0:
                start, end = items[index - 1][1].end_mark.index, pair[1].end_mark.index
            else:
                start, end = pair[0].start_mark.index, pair[1].end_mark.index
            return text[:start] + text[end:]
        start = text.rfind("\n", 0, pair[0].start_mark.index) + 1
        end = _line_end_after(text, _last_content_end(text, pair[1]))
        return text[:start] + text[end:]
    return text


def split_document(text: str) -> dict[str, str]:
    """A config document -> ``{section: body}`` for the sections present (``output`` is
    returned as ``outputs``). Bodies are dedented; comment lines just above a section header
    and a comment on the header line go with that section. Returns {} when the document is
    not a block mapping of sections (the caller then rebuilds bodies from parsed values).
    """
    lines = text.splitlines()
    headers: list[tuple[int, str, str]] = []
    for index, line in enumerate(lines):
        match = _TOP_LEVEL_KEY.match(line)
        if match:
            headers.append((index, match.group(1), match.group(2).strip()))
    bodies: dict[str, str] = {}
    for number, (index, key, rest) in enumerate(headers):
        if rest and not rest.startswith("#"):
            return {}  # value on the header line (flow style): not a block section
        name = "outputs" if key == "output" else key
        end = headers[number + 1][0] if number + 1 < len(headers) else len(lines)
        end = _leading_comments_start(lines, end)
        body_lines = [line for line in lines[index + 1:end]]
        while body_lines and not body_lines[-1].strip():
            body_lines.pop()
        start = _leading_comments_start(lines, index)
        comments = [line.strip() for line in lines[start:index] if line.strip()]
        if number == 0:
            comments = []  # comments above the first section describe the whole file
        if rest:
            comments.append(rest)
        body = textwrap.dedent("\n".join(body_lines))
        bodies[name] = "\n".join([*comments, body]).strip("\n") + "\n"
    return bodies


def join_document(bodies: dict[str, str], header: str = "") -> str:
    """``{section: body}`` -> one YAML document with each body indented under its header."""
    parts = [header] if header else []
    for name in SECTION_HEADERS:
        if name in bodies:
            body = bodies[name].rstrip("\n")
            indented = textwrap.indent(body, "  ", lambda line: bool(line.strip()))
            parts.append(f"{name}:\n{indented}")
    return "\n".join(parts) + "\n"


# --- helpers ----------------------------------------------------------------------------


def _compose_or_raise(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=_EditLoader)


def _compose(text: str) -> yaml.Node | None:
    try:
        return _compose_or_raise(text)
    except (yaml.YAMLError, RecursionError):
        return None


def _find(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _replace_node(text: str, node: yaml.Node, new_value: str) -> str:
    start, end = node.start_mark.index, node.end_mark.index
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        end = _last_content_end(text, node)
    if start == end and not text[start - 1:start].isspace():
        new_value = " " + new_value  # an empty value right after the colon
    elif start == end:
        new_value = new_value.lstrip()
    return text[:start] + new_value + text[end:]


def _insert(text: str, mapping: yaml.MappingNode, path: tuple[str, ...], scalar: str) -> str:
    """Add ``path: scalar`` to ``mapping`` (its last entry is followed by the new one)."""
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the "}"
        entry = f"{path[0]}: {scalar if len(path) == 1 else _flow(path[1:], scalar)}"
        before = text[:close].rstrip()
        joiner = "" if before.endswith("{") else ", "
        return before + joiner + entry + text[close:]
    indent = mapping.value[0][0].start_mark.column if mapping.value else 0
    position = _line_end_after(text, _last_content_end(text, mapping))
    block = _render(path, scalar, indent)
    if position > 0 and text[position - 1] != "\n":
        block = "\n" + block
    return text[:position] + block + text[position:]


def _last_content_end(text: str, node: yaml.Node) -> int:
    """Index just past the last value of a (block) node, ignoring trailing blank lines."""
    while isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        node = node.value[-1][1]
    end = node.end_mark.index
    while end > 0 and text[end - 1] in " \t\n\r":
        end -= 1
    return end


def _line_end_after(text: str, index: int) -> int:
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _render(path: tuple[str, ...], scalar: str, indent: int) -> str:
    pad = " " * indent
    if len(path) == 1:
        return f"{pad}{path[0]}: {scalar}\n"
    return f"{pad}{path[0]}:\n" + _render(path[1:], scalar, indent + 2)


def _flow(path: tuple[str, ...], scalar: str) -> str:
    return scalar if not path else "{" + f"{path[0]}: {_flow(path[1:], scalar)}" + "}"


def _append_lines(text: str, block: str) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


def _set_by_line(text: str, key: str, scalar: str) -> str | None:
    """Fallback for text that is not valid YAML: rewrite the first ``key: value``."""
    pattern = re.compile(rf"(?m)((?:^|[{{,])[ \t]*{re.escape(key)}[ \t]*:[ \t]*)([^,}}#\n]*?)"
                         r"([ \t]*(?:[,}#].*)?)$")
    match = pattern.search(text)
    if match is None:
        return None
    return text[:match.start(2)] + scalar + text[match.end(2):]


def _leading_comments_start(lines: list[str], index: int) -> int:
    """Index of the first of the comment/blank lines directly above ``lines[index]``."""
    start = index
    while start > 0 and (lines[start - 1].startswith("#") or not lines[start - 1].strip()):
        start -= 1
    while start < index and not lines[start].strip():
        start += 1
    return start
