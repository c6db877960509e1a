"""Integer formats: how many bits, signed or not, and the resulting code range."""

from __future__ import annotations

import re
from dataclasses import dataclass

from quantlib.errors import ConfigError, show_value

# The name is shown in pages, plots and reports: a plain label, never markup.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}")
MIN_BITS = 2
MAX_BITS = 16


@dataclass(frozen=True)
class BitType:
    """An integer code format, e.g. ``BitType(8, True)`` is int8 with codes in [-128, 127].

    ``name`` is a label only (``int8``/``uint4`` by default); the range follows ``bits`` and
    ``signed``.
    """

    bits: int = 8
    signed: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        bits_ok = isinstance(self.bits, int) and not isinstance(self.bits, bool)
        if not bits_ok or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ConfigError(
                f"must be an integer from {MIN_BITS} to {MAX_BITS}, got {show_value(self.bits)}",
                "bits")
        if not isinstance(self.signed, bool):
            raise ConfigError(f"must be true or false, got {show_value(self.signed)}", "signed")
        if not isinstance(self.name, str):
            raise ConfigError(f"must be a string such as int8, got {show_value(self.name)}",
                              "name")
        if not self.name:
            object.__setattr__(self, "name", self.default_name)
        if not _LABEL.fullmatch(self.name):
            raise ConfigError(f"must be a plain label: a letter or digit, then at most 31 "
                              f"letters, digits or _.+- (e.g. int8), got {show_value(self.name)}",
                              "name")

    @property
    def default_name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def num_levels(self) -> int:
        return 2**self.bits
