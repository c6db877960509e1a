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
