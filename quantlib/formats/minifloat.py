"""Round float32 values to a small floating-point element grid (FP8/FP6/FP4), vectorised.

A format with ``ebits`` exponent bits and ``mbits`` mantissa bits (bias 2^(ebits-1) - 1) has
normal values 2^e * (1 + m / 2^mbits) and subnormals down to 2^(emin - mbits), where
emin = 1 - bias. Rounding is to nearest, ties to even, and magnitudes at or above
``max_normal`` saturate to it (sign kept): the semantics of torchao's
``_f32_to_floatx_unpacked`` and of a clamped cast to ``torch.float8_*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Minifloat:
    """An element format: ``Minifloat(2, 1, 6.0)`` is FP4 E2M1 with values up to 6."""

    ebits: int
    mbits: int
    max_normal: float
    torch_dtype: torch.dtype | None = None  # the native dtype, where torch has one

    @property
    def min_exponent(self) -> int:
        """The exponent of the smallest normal value (1 - bias)."""
        return 2 - 2 ** (self.ebits - 1)

    @property
    def max_pow2(self) -> int:
        """floor(log2(max_normal)): the element's emax in the OCP MX spec."""
        return int(torch.tensor(self.max_normal).log2().floor())


FP4_E2M1 = Minifloat(2, 1, 6.0)
FP6_E2M3 = Minifloat(2, 3, 7.5)
FP6_E3M2 = Minifloat(3, 2, 28.0)
FP8_E4M3 = Minifloat(4, 3, 448.0, torch.float8_e4m3fn)
FP8_E5M2 = Minifloat(5, 2, 57344.0, torch.float8_e5m2)


def round_to_minifloat(x: torch.Tensor, fmt: Minifloat) -> torch.Tensor:
    """float32 ``x`` -> the nearest value of ``fmt`` (ties to even, saturating), as float32.

    The quantum of the binade holding |x| is 2^(max(floor(log2|x|), emin) - mbits); dividing by
    it, rounding half to even and multiplying back is exact in float32. floor(log2|x|) is read
    off the float32 exponent bits (a float32 subnormal or zero reads -127, below every emin),
    and the quantum and its reciprocal are built from bits: no frexp/ldexp.
    """
    x = x.float()
    if fmt.torch_dtype is not None:  # the native cast rounds the same way, and is faster
        return x.clamp(-fmt.max_normal, fmt.max_normal).to(fmt.torch_dtype).float()
    mag = x.abs()
    binade = torch.bitwise_right_shift(mag.view(torch.int32), 23)  # sign bit is 0
    binade = torch.clamp(binade, fmt.min_exponent + 127, 254)  # biased; inf saturates
    inverse = torch.bitwise_left_shift(2 * 127 + fmt.mbits - binade, 23).view(torch.float32)
    quantum = torch.bitwise_left_shift(binade - fmt.mbits, 23).view(torch.float32)
    rounded = torch.round(mag * inverse).mul_(quantum)
    return torch.copysign(torch.clamp_(rounded, max=fmt.max_normal), x)
