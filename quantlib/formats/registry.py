"""The number formats by name, and one entry point: ``fake_quantize(x, name, ...)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantlib.bit_type import MAX_BITS, MIN_BITS, BitType
from quantlib.formats.blocks import check_block_size
from quantlib.formats.fp8 import fake_quantize_fp8
from quantlib.formats.integer import fake_quantize_int
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
    fake_quantize_mx,
    fake_quantize_mxint8,
)
from quantlib.formats.nvfp4 import NVFP4_BLOCK_SIZE, fake_quantize_nvfp4


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
    def bit_type(self) -> BitType:
        """The integer code range (integer formats only)."""
        if self.family != "int":
            raise ValueError(f"{self.name} is not an integer format")
        return BitType(self.element_bits, self.signed)


def _integer_specs() -> dict[str, FormatSpec]:
    specs = {}
    for signed in (True, False):
        for bits in range(MIN_BITS, MAX_BITS + 1):
            bit_type = BitType(bits, signed)
            specs[bit_type.name] = FormatSpec(bit_type.name, "int", bits, signed, None,
                                              float(bit_type.qmax), "fp32")
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


def get_format(name: str) -> FormatSpec:
    """The spec for ``name``; ValueError listing the valid names otherwise."""
    spec = FORMATS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"unknown number format {name!r}; valid formats: {valid_names()}")
    return spec


def fake_quantize(x: torch.Tensor, name: str, block_size: int | None = None,
                  axis: int | None = None, amax: torch.Tensor | float | None = None, *,
                  symmetric: bool = True) -> torch.Tensor:
    """Quantize ``x`` to format ``name`` and back; same shape and dtype as ``x``.

    Granularity: one scale per tensor (default), per channel along ``axis``, or per block of
    ``block_size`` consecutive values along the last axis (must divide it). MX formats always
    use blocks of 32 and NVFP4 blocks of 16 (``block_size`` may be omitted or must equal it).

    ``amax`` replaces max|x| as the clipping range: one value or one per scale for int and
    fp8 (ints then use the range [-amax, amax]); one value (the per-tensor FP32 scale's amax)
    for NVFP4; not accepted for MX, whose scales come from each block. ``symmetric`` picks
    Uniform (True) or Affine (False) for integer formats.
    """
    spec = get_format(name)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name}: x must be a floating-point tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    if spec.family != "int" and not symmetric:
        raise ValueError(f"{name}: symmetric=False (Affine) applies to integer formats only")
    if block_size is not None and axis is not None:
        raise ValueError(f"{name}: give block_size or axis, not both (blocks run along the "
                         "last axis)")
    if spec.block_size is not None:
        if axis is not None:
            raise ValueError(f"{name}: has one scale per block of {spec.block_size} along the "
                             f"last axis; axis={axis} is not supported")
        if block_size is None:
            block_size = spec.block_size
        elif block_size != spec.block_size:
            raise ValueError(f"{name} needs block_size {spec.block_size}, got {block_size!r}")
    if block_size is not None:
        check_block_size(x, block_size, name)

    if spec.family == "int":
        return fake_quantize_int(x, spec.bit_type, symmetric, block_size, axis, amax)
    if spec.family == "fp8":
        return fake_quantize_fp8(x, spec.element, block_size, axis, amax)
    if spec.family == "nvfp4":
        return fake_quantize_nvfp4(x, amax)
    if amax is not None:
        raise ValueError(f"{name}: MX scales come from each block's own amax; amax= is not "
                         "accepted")
    if spec.element is None:
        return fake_quantize_mxint8(x)
    return fake_quantize_mx(x, spec.element)
