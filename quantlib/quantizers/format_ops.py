"""Quantization arithmetic of every element format, on tensors whose qparams already
broadcast against them (a per-tensor scalar, a per-channel view, or [..., D/N, 1] against a
block view [..., D/N, N]).

- ``scale`` float32 and ``zero_point`` int64 (0 for float formats);
- ``tensor_scale`` float32 0-d: NVFP4's per-tensor FP32 scale (None otherwise).

The scale of each family, from a range (min, max) with amax = max(-min(min, 0), max(max, 0)):

- int: torch.ao's rules (`calculate_qparams`);
- fp8: amax / max_finite (torchao's ``_choose_scale_float8``);
- mx: the E8M0 power of two 2^(floor(log2 amax) - emax_elem), from amax's float32 exponent
  bits, clamped to [2^-127, 2^127] (torchao's ``to_mx`` with ``ScaleCalculationMode.FLOOR``);
- nvfp4: the block's E4M3 value e4m3(clamp((amax / 6) / tensor_scale, 2^-6, 448)), with
  tensor_scale = tensor amax / (448 * 6).

Each result is bit-identical to `quantlib.formats.fake_quantize` (and so to torchao).
"""

from __future__ import annotations

import torch

from quantlib.bit_type import BitType
from quantlib.formats.grid import codes_to_values, nonnegative_grid, values_to_codes
from quantlib.formats.minifloat import FP4_E2M1, FP8_E4M3, round_to_minifloat
from quantlib.formats.mx import (
    E8M0_BIAS,
    FLOAT32_MIN_NORMAL,
    MXINT8_FRACTION_BITS,
    MXINT8_MAX_CODE,
)
from quantlib.formats.nvfp4 import E4M3_MIN_NORMAL
from quantlib.quantizers.functional import _codes, calculate_qparams, grid_range

NVFP4_TENSOR_DIVISOR = FP8_E4M3.max_normal * FP4_E2M1.max_normal  # 448 * 6
#: Bits each stored scale takes, by FormatSpec.scale.
SCALE_BITS = {"fp32": 32, "e8m0": 8, "e4m3 x fp32": 8}


def absolute_max(min_val: torch.Tensor, max_val: torch.Tensor) -> torch.Tensor:
    """max(-min(min, 0), max(max, 0)) in float32, elementwise."""
    return torch.maximum(-torch.clamp(min_val.float(), max=0.0),
                         torch.clamp(max_val.float(), min=0.0))


def nvfp4_tensor_scale(amax: torch.Tensor) -> torch.Tensor:
    """NVFP4's per-tensor FP32 scale amax / (448 * 6), 0-d float32 (torchao's
    ``per_tensor_amax_to_scale``)."""
    return (amax.float().reshape(()) / NVFP4_TENSOR_DIVISOR).to(torch.float32)


def range_to_qparams(min_val: torch.Tensor, max_val: torch.Tensor, bit_type: BitType,
                     symmetric: bool = True, tensor_scale: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale float32, zero_point int64), shaped like ``min_val``/``max_val`` (one per
    tensor, channel or block). NVFP4 block scales use ``tensor_scale`` (default: from the
    largest amax of the given ranges)."""
    family = bit_type.family
    if family == "int":
        return calculate_qparams(min_val, max_val, bit_type, symmetric)
    amax = absolute_max(min_val, max_val)
    spec = bit_type.format
    if family == "fp8":
        scale = (amax / spec.max_finite).to(torch.float32)
    elif family == "mx":
        emax = 0 if spec.element is None else spec.element.max_pow2
        exponent_bits = torch.bitwise_right_shift(amax.view(torch.int32), 23) & 0xFF
        exponent = torch.clamp(exponent_bits - E8M0_BIAS - emax, -E8M0_BIAS, E8M0_BIAS)
        scale = torch.ldexp(torch.ones_like(amax), exponent)
    else:  # nvfp4
        if tensor_scale is None:
            tensor_scale = nvfp4_tensor_scale(amax.max() if amax.numel() else amax.sum())
        relative = (amax / FP4_E2M1.max_normal) / tensor_scale
        scale = round_to_minifloat(
            torch.clamp(relative, min=E4M3_MIN_NORMAL, max=FP8_E4M3.max_normal), FP8_E4M3)
    return scale, torch.zeros_like(scale, dtype=torch.int64)


def quantize_elements(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                      bit_type: BitType, tensor_scale: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """The element each value rounds to, float32 (broadcast shape): the integer code for
    integer formats (zero point included), the unscaled element value for float formats."""
    family = bit_type.family
    if family == "int":
        return _codes(x, scale, zero_point.to(torch.float32), bit_type)
    spec = bit_type.format
    x = x.float()
    if family == "fp8":
        elements = round_to_minifloat(x / scale, spec.element)
        return _zero_where(scale == 0, elements)
    if family == "mx":
        if spec.element is None:  # MXINT8: k / 64
            k = torch.round(x / scale * 2**MXINT8_FRACTION_BITS)
            return torch.clamp(k, -MXINT8_MAX_CODE, MXINT8_MAX_CODE) * 2.0**-MXINT8_FRACTION_BITS
        return round_to_minifloat(x / torch.clamp(scale, min=FLOAT32_MIN_NORMAL), spec.element)
    reciprocal = (1.0 / tensor_scale) / scale
    return _zero_where(tensor_scale == 0, round_to_minifloat(x * reciprocal, spec.element))


def scale_elements(elements: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   bit_type: BitType, tensor_scale: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Elements (from `quantize_elements`) -> dequantized float32 values."""
    if bit_type.family == "int":
        return (elements - zero_point.to(torch.float32)) * scale.float()
    if bit_type.family == "nvfp4":
        return elements * (tensor_scale * scale)
    return elements * scale


def fake_quantize_any(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                      bit_type: BitType, tensor_scale: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Quantize and dequantize (float32, broadcast shape)."""
    elements = quantize_elements(x, scale, zero_point, bit_type, tensor_scale)
    return scale_elements(elements, scale, zero_point, bit_type, tensor_scale)


def quantize_any(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 bit_type: BitType, tensor_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Float values -> int32 codes (`quantlib.formats.grid`'s convention)."""
    if bit_type.family == "int":  # `_codes` with fewer passes (same values)
        codes = torch.round(x.float() * torch.reciprocal(scale.float()))
        if bool(zero_point.any()):
            codes += zero_point.to(torch.float32)
        return codes.clamp_(bit_type.qmin, bit_type.qmax).to(torch.int32)
    elements = quantize_elements(x, scale, zero_point, bit_type, tensor_scale)
    return values_to_codes(elements, bit_type.format)


def dequantize_any(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   bit_type: BitType, tensor_scale: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """int codes -> float32 values."""
    if bit_type.family == "int":
        elements = codes.to(torch.float32)
        if not bool(zero_point.any()):  # (q - 0) * s, one pass fewer
            return elements.mul_(scale.float())
    else:
        elements = codes_to_values(codes, bit_type.format)
    return scale_elements(elements, scale, zero_point, bit_type, tensor_scale)


def effective_scale(scale: torch.Tensor, bit_type: BitType,
                    tensor_scale: torch.Tensor | None = None) -> torch.Tensor:
    """The value of one element unit: ``scale`` (NVFP4: tensor_scale * block scale)."""
    return scale * tensor_scale if bit_type.family == "nvfp4" else scale


def representable_range(scale: torch.Tensor, zero_point: torch.Tensor, bit_type: BitType,
                        tensor_scale: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) of the representable values, shaped like ``scale``."""
    if bit_type.family == "int":
        return grid_range(scale, zero_point, bit_type)
    top = float(nonnegative_grid(bit_type.format)[-1])
    hi = top * effective_scale(scale.float(), bit_type, tensor_scale)
    return -hi, hi


def edge_step(scale: torch.Tensor, bit_type: BitType,
              tensor_scale: torch.Tensor | None = None) -> torch.Tensor:
    """The grid step at the range's ends, shaped like ``scale``: ``scale`` for integers, the
    gap between the two largest elements times the scale for float formats. A value over half
    of it beyond the range counts as clipped."""
    if bit_type.family == "int":
        return scale.float()
    grid = nonnegative_grid(bit_type.format)
    return float(grid[-1] - grid[-2]) * effective_scale(scale.float(), bit_type, tensor_scale)


def _zero_where(mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` with 0 where ``mask`` (a zero scale) holds; no copy when it holds nowhere."""
    if bool(mask.any()):
        return torch.where(mask, 0.0, values)
    return values
