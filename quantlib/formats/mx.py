"""OCP Microscaling (MX v1.0): one shared power-of-two E8M0 scale per 32 values along the
last axis, with FP8/FP6/FP4 or INT8 elements.

The float elements are bit-identical to torchao 0.18's
``to_mx(x, elem_dtype, 32, ScaleCalculationMode.FLOOR)`` followed by ``to_dtype``:

- ``e = exponent_field(float32(amax)) - 127 - emax_elem`` (the biased exponent bits of the
  block amax, so a subnormal or zero amax counts as 2^-127; emax_elem = floor(log2(max))),
  clamped to the E8M0 range [-127, 127];
- quantize: ``q = element(clamp(float32(x) / max(2^e, 2^-126), -max, max))``, rounding to
  nearest even (torchao clamps the divisor to float32's smallest normal);
- dequantize: ``x_hat = q * 2^e`` in ``x``'s dtype (here 2^-127 is used as is).

MXINT8 has no torchao reference; it follows the OCP MX v1.0 definition: emax_elem = 0, the
same E8M0 scale, and int8 elements read as fixed point with 6 fractional bits, i.e. values
k/64 with k in [-127, 127] (the symmetric range; -128/64 is not produced), rounded half to even.
"""

from __future__ import annotations

import torch

from quantlib.formats.blocks import to_blocks
from quantlib.formats.minifloat import Minifloat, round_to_minifloat

MX_BLOCK_SIZE = 32
E8M0_BIAS = 127
FLOAT32_MIN_NORMAL = 2.0**-126
MXINT8_FRACTION_BITS = 6
MXINT8_MAX_CODE = 127


def shared_exponent(x_blocks: torch.Tensor, emax_elem: int) -> torch.Tensor:
    """The unbiased E8M0 exponent per block, int32 [..., D/32, 1], from ``x_blocks``
    [..., D/32, 32]: floor(log2(amax)) - emax_elem read off float32 exponent bits, clamped to
    [-127, 127]."""
    amax = x_blocks.abs().amax(dim=-1, keepdim=True).to(torch.float32)
    exponent_bits = torch.bitwise_right_shift(amax.view(torch.int32), 23) & 0xFF
    return torch.clamp(exponent_bits - E8M0_BIAS - emax_elem, -E8M0_BIAS, E8M0_BIAS)


def _pow2(exponent: torch.Tensor) -> torch.Tensor:
    """2^exponent as float32 (exact, subnormals included)."""
    return torch.ldexp(torch.ones_like(exponent, dtype=torch.float32), exponent)


def fake_quantize_mx(x: torch.Tensor, element: Minifloat) -> torch.Tensor:
    """MXFP8/MXFP6/MXFP4 round trip of ``x`` [..., D] (D divisible by 32); same shape/dtype."""
    blocks = to_blocks(x, MX_BLOCK_SIZE)
    exponent = shared_exponent(blocks, element.max_pow2)
    scale = _pow2(exponent)
    codes = round_to_minifloat(blocks.float() / torch.clamp(scale, min=FLOAT32_MIN_NORMAL),
                               element)
    dequant = codes.to(x.dtype) * scale.to(x.dtype)
    return dequant.reshape(x.shape)


def fake_quantize_mxint8(x: torch.Tensor) -> torch.Tensor:
    """MXINT8 round trip of ``x`` [..., D] (D divisible by 32); same shape/dtype.

    Per block: X = 2^e with e = floor(log2(amax)) clamped to [-127, 127];
    k = clamp(round_half_even(x / X * 64), -127, 127); x_hat = k / 64 * X.
    """
    blocks = to_blocks(x, MX_BLOCK_SIZE)
    scale = _pow2(shared_exponent(blocks, 0))
    fixed_point = torch.round(blocks.float() / scale * 2**MXINT8_FRACTION_BITS)
    codes = torch.clamp(fixed_point, -MXINT8_MAX_CODE, MXINT8_MAX_CODE)
    dequant = codes * 2.0**-MXINT8_FRACTION_BITS * scale
    return dequant.to(x.dtype).reshape(x.shape)
