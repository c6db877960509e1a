"""The number formats by name: what each name means (`FormatSpec`) and the table `FORMATS`.

A leaf module (no BitType, no kernels), so `quantlib.bit_type` can look names up in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantlib.formats.minifloat import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    Minifloat,
)
from quantlib.formats.mx import (
    MX_BLOCK_SIZE,
    MXINT8_MAX_CODE,
)
from quantlib.formats.nvfp4 import NVFP4_BLOCK_SIZE

MIN_BITS = 2
MAX_BITS = 16


@dataclass(frozen=True)
class FormatSpec:
    """What a format name means.

    - ``family``: "int", "fp8", "mx" or "nvfp4";
    - ``element_bits``/``signed``: the stored element code;
    - ``block_size``: the block size the format requires (MX 32, NVFP4 16), or None when any
      block size dividing the last dimension (or per tensor / per channel) is allowed;
    - ``max_finite``: the largest element magnitude (integer formats: qmax, in code units);
    - ``scale``: how the scale is stored ("fp32", "e8m0", "e4m3 x fp32").
    """

    name: str
    family: str
    element_bits: int
    signed: bool
    block_size: int | None
    max_finite: float
    scale: str
    element: Minifloat | None = None

    @property
    def int_range(self) -> tuple[int, int]:
        """(qmin, qmax) of an integer format's codes."""
        if self.family != "int":
            raise ValueError(f"{self.name} is not an integer format")
        if self.signed:
            return -(2 ** (self.element_bits - 1)), 2 ** (self.element_bits - 1) - 1
        return 0, 2**self.element_bits - 1


def _integer_specs() -> dict[str, FormatSpec]:
    specs = {}
    for signed in (True, False):
        for bits in range(MIN_BITS, MAX_BITS + 1):
            name = f"{'int' if signed else 'uint'}{bits}"
            qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
            specs[name] = FormatSpec(name, "int", bits, signed, None, float(qmax), "fp32")
    return specs


FORMATS: dict[str, FormatSpec] = {
    **_integer_specs(),
    "fp8_e4m3": FormatSpec("fp8_e4m3", "fp8", 8, True, None, 448.0, "fp32", FP8_E4M3),
    "fp8_e5m2": FormatSpec("fp8_e5m2", "fp8", 8, True, None, 57344.0, "fp32", FP8_E5M2),
    "mxfp8_e4m3": FormatSpec("mxfp8_e4m3", "mx", 8, True, MX_BLOCK_SIZE, 448.0, "e8m0",
                             FP8_E4M3),
    "mxfp8_e5m2": FormatSpec("mxfp8_e5m2", "mx", 8, True, MX_BLOCK_SIZE, 57344.0, "e8m0",
                             FP8_E5M2),
    "mxfp6_e2m3": FormatSpec("mxfp6_e2m3", "mx", 6, True, MX_BLOCK_SIZE, 7.5, "e8m0",
                             FP6_E2M3),
    "mxfp6_e3m2": FormatSpec("mxfp6_e3m2", "mx", 6, True, MX_BLOCK_SIZE, 28.0, "e8m0",
                             FP6_E3M2),
    "mxfp4": FormatSpec("mxfp4", "mx", 4, True, MX_BLOCK_SIZE, 6.0, "e8m0", FP4_E2M1),
    "mxint8": FormatSpec("mxint8", "mx", 8, True, MX_BLOCK_SIZE, MXINT8_MAX_CODE / 64, "e8m0"),
    "nvfp4": FormatSpec("nvfp4", "nvfp4", 4, True, NVFP4_BLOCK_SIZE, 6.0, "e4m3 x fp32",
                        FP4_E2M1),
}


def valid_names() -> str:
    """The valid names, for error messages (integers shown as a range)."""
    floats = [name for name, spec in FORMATS.items() if spec.family != "int"]
    return (f"int{MIN_BITS}..int{MAX_BITS}, uint{MIN_BITS}..uint{MAX_BITS}, "
            + ", ".join(floats))


