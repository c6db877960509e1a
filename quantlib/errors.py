"""Errors users see. Both are ValueErrors so callers can catch them as such."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value. `path` is the dotted field (``weight.bit_type.bits``)."""

    def __init__(self, message: str, path: str = "", line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}: " if path else ""
        at_line = f" (line {line})" if line is not None else ""
        super().__init__(f"{where}{message}{at_line}")


def show_value(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, shortened to about ``limit`` characters.

    Never raises: a YAML integer can have more digits than Python will turn into text
    (``sys.get_int_max_str_digits()``), so its repr fails.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail to format
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."
