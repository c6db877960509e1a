"""FP8 (E4M3, E5M2) fake quantization with an FP32 scale = amax / max_finite.

Bit-identical to torchao 0.18's ``_choose_scale_float8`` -> ``_quantize_affine_float8`` ->
``_dequantize_affine_float8``:

- ``amax`` is max|x| in ``x``'s dtype, and ``scale = (amax / max_finite)`` is taken in that dtype
  and then cast to float32. There is no eps: an all-zero block gets scale 0, exactly as in
  torchao;
- ``q = fp8(clamp(float32(x) / scale, -max_finite, max_finite))`` (round to nearest even);
- ``dequant = float32(q) * scale``, cast back to ``x``'s dtype.

The one deliberate difference: where the scale is 0 (an all-zero block, or ``amax`` = 0),
torchao returns NaN (0/0); here the result is 0.
"""

from __future__ import annotations

import torch

from quantlib.formats.blocks import abs_max, shape_like_scale, to_blocks
from quantlib.formats.minifloat import Minifloat, round_to_minifloat


def choose_fp8_scale(x: torch.Tensor, element: Minifloat, block_size: int | None = None,
                     axis: int | None = None, amax: torch.Tensor | None = None) -> torch.Tensor:
    """The float32 scale amax / max_finite.

    Shape: [1]*ndim per tensor; ndim dims with only ``axis`` kept per channel; [..., D/N, 1]
    per block of N along the last axis (it broadcasts against ``to_blocks(x, N)``). A given
    ``amax`` (e.g. an observer's clipped range) replaces max|x| and must broadcast to that
    shape.
    """
    if amax is None:
        amax = abs_max(x, block_size, axis)
    else:
        amax = shape_like_scale(amax, x, block_size, axis, "amax")
        if not amax.is_floating_point():
            amax = amax.float()
    return (amax / element.max_normal).to(torch.float32)


def fake_quantize_fp8(x: torch.Tensor, element: Minifloat, block_size: int | None = None,
                      axis: int | None = None, amax: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize ``x`` to FP8 and back, one scale per tensor, per channel along ``axis`` or per
    block of ``block_size`` along the last axis. Same shape and dtype as ``x``."""
    scale = choose_fp8_scale(x, element, block_size, axis, amax)
    values = x if block_size is None else to_blocks(x, block_size)
    codes = round_to_minifloat(values.float() / scale, element)
    dequant = torch.where(scale == 0, 0.0, codes * scale)
    return dequant.to(x.dtype).reshape(x.shape)
