"""Element formats: integers (bits, signed, code range) and, by name, the float formats
(FP8, MX, NVFP4) of `quantlib.formats`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from quantlib.errors import ConfigError, show_value
from quantlib.formats.grid import max_code
from quantlib.formats.specs import FORMATS, MAX_BITS, MIN_BITS

# The name is shown in pages, plots and reports: a plain label, never markup.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}")
# A cheap pre-filter before the registry lookup, and the shape of a format-like name.
_FLOAT_LIKE = re.compile(r"^(fp|mx|nv)")
_FORMAT_SHAPED = re.compile(r"^(fp\d+(_e\dm\d)?|mxfp\d+(_e\dm\d)?|mxint\d+|nvfp\d+)$", re.I)


@dataclass(frozen=True)
class BitType:
    """An element format.

    - Integers: ``BitType(8, True)`` is int8 with codes in [-128, 127]; ``BitType()`` is int8
      and ``BitType(4, False)`` uint4. ``name`` is a label only (``int8``/``uint4`` by
      default); the range follows ``bits`` and ``signed``.
    - Float formats: ``BitType(name="mxfp4")`` (also ``fp8_e4m3``, ``fp8_e5m2``,
      ``mxfp8_e4m3``, ``mxfp8_e5m2``, ``mxfp6_e2m3``, ``mxfp6_e3m2``, ``mxint8``, ``nvfp4``).
      ``bits`` (the element width) and ``signed`` (always true) are derived; given and
      inconsistent, they raise ConfigError naming the field. Any other name is a label of an
      integer format, as before (config_loader warns when it looks like a format's name).

    ``qmin``/``qmax``/``num_levels`` describe the element *codes* (see
    `quantlib.formats.grid`): for integers the integer range; for float formats the signed
    grid index, codes -(n-1)..(n-1) with n the non-negative element values (E2M1: -7..7,
    15 levels; E4M3: -126..126; MXINT8: -127..127), so ``num_levels`` counts the distinct
    values (negative zero excluded).
    """

    bits: int | None = None  # None: 8 for integers, derived for float formats
    signed: bool | None = None  # None: true
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"must be a string such as int8, got {show_value(self.name)}",
                              "name")
        spec = _float_format(self.name)
        if spec is not None:
            self._check_derived("bits", self.bits, spec.element_bits)
            self._check_derived("signed", self.signed, spec.signed)
            object.__setattr__(self, "bits", spec.element_bits)
            object.__setattr__(self, "signed", spec.signed)
            return
        if self.bits is None:
            object.__setattr__(self, "bits", 8)
        if self.signed is None:
            object.__setattr__(self, "signed", True)
        bits_ok = isinstance(self.bits, int) and not isinstance(self.bits, bool)
        if not bits_ok or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ConfigError(
                f"must be an integer from {MIN_BITS} to {MAX_BITS}, got {show_value(self.bits)}",
                "bits")
        if not isinstance(self.signed, bool):
            raise ConfigError(f"must be true or false, got {show_value(self.signed)}", "signed")
        if not self.name:
            object.__setattr__(self, "name", self.default_name)
        if not _LABEL.fullmatch(self.name):
            raise ConfigError(f"must be a plain label: a letter or digit, then at most 31 "
                              f"letters, digits or _.+- (e.g. int8), got {show_value(self.name)}",
                              "name")

    def _check_derived(self, field: str, given: object, derived: object) -> None:
        if given is not None and (given != derived or type(given) is not type(derived)):
            raise ConfigError(
                f"{self.name} has {field} {str(derived).lower()}, got {show_value(given)}; "
                f"omit {field} (it is derived from the format) or give "
                f"{str(derived).lower()}", field)

    @property
    def default_name(self) -> str:
        """``int<b>``/``uint<b>`` for integers; the format's name for float formats."""
        if self.is_float:
            return self.name
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def format(self):
        """The `quantlib.formats.FormatSpec` of this element format (integers: int<b>/uint<b>
        by ``bits``/``signed``, whatever the label)."""
        spec = _float_format(self.name)
        return spec if spec is not None else FORMATS[f"{'int' if self.signed else 'uint'}"
                                                     f"{self.bits}"]

    @property
    def family(self) -> str:
        """"int", "fp8", "mx" or "nvfp4"."""
        spec = _float_format(self.name)
        return "int" if spec is None else spec.family

    @property
    def is_float(self) -> bool:
        """True for the FP8, MX and NVFP4 formats (MXINT8 included: its scale is E8M0)."""
        return _float_format(self.name) is not None

    @property
    def qmin(self) -> int:
        if self.is_float:
            return -self.qmax
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        if self.is_float:
            return max_code(self.format)
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def num_levels(self) -> int:
        """Distinct codes: 2**bits for integers, qmax - qmin + 1 for float formats."""
        return self.qmax - self.qmin + 1 if self.is_float else 2**self.bits


@functools.lru_cache(maxsize=256)
def _float_format(name: str):
    """The FormatSpec of a float-format name; None for integer names and other labels."""
    if not name or not _FLOAT_LIKE.match(name):
        return None
    spec = FORMATS.get(name)
    return spec if spec is not None and spec.family != "int" else None


def looks_like_unknown_format(name: str) -> bool:
    """True for a label such as ``fp4`` or ``mxfp5``: shaped like a float format's name but not
    one (it then labels an integer format; config_loader warns)."""
    return bool(_FORMAT_SHAPED.match(name)) and _float_format(name) is None
