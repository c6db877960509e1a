"""The number formats by name, and one entry point: ``fake_quantize(x, name, ...)``."""

from __future__ import annotations

import torch

from quantlib.bit_type import BitType
from quantlib.formats.blocks import check_block_size
from quantlib.formats.fp8 import fake_quantize_fp8
from quantlib.formats.integer import fake_quantize_int
from quantlib.formats.mx import fake_quantize_mx, fake_quantize_mxint8
from quantlib.formats.nvfp4 import fake_quantize_nvfp4
from quantlib.formats.specs import FORMATS, FormatSpec, valid_names


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
        bit_type = BitType(spec.element_bits, spec.signed)
        return fake_quantize_int(x, bit_type, symmetric, block_size, axis, amax)
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
