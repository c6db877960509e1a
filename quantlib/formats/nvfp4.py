"""NVFP4: FP4 E2M1 elements, an FP8 E4M3 scale per 16 values along the last axis and an FP32
per-tensor scale.

Bit-identical to torchao 0.18's
``NVFP4Tensor.to_nvfp4(x, per_tensor_scale=per_tensor_amax_to_scale(amax)).dequantize()``:

- ``tensor_scale = float32(amax) / (448 * 6)``;
- per block of 16: ``block_scale = e4m3(clamp((max|x| / 6) / tensor_scale, 2^-6, 448))`` (the
  smallest normal E4M3 value is the floor);
- quantize: ``q = e2m1(clamp(x * ((1 / tensor_scale) / block_scale), -6, 6))``, ties to even;
- dequantize: ``x_hat = q * (tensor_scale * block_scale)`` in float32, cast to ``x``'s dtype.

The one deliberate difference: with ``amax`` = 0 (an all-zero tensor) torchao returns NaN
(0/0); here the result is 0.
"""

from __future__ import annotations

import torch

from quantlib.formats.blocks import to_blocks
from quantlib.formats.minifloat import FP4_E2M1, FP8_E4M3, round_to_minifloat

NVFP4_BLOCK_SIZE = 16
E4M3_MIN_NORMAL = 2.0**-6


def nvfp4_scales(x: torch.Tensor, amax: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(tensor_scale float32 0-d, block_scale float32 [..., D/16, 1] holding E4M3 values).

    ``amax`` (one value) defaults to max|x|."""
    if amax is None:
        amax = x.abs().amax()
    amax = torch.as_tensor(amax, device=x.device).reshape(())
    tensor_scale = amax.to(torch.float32) / (FP8_E4M3.max_normal * FP4_E2M1.max_normal)
    block_amax = to_blocks(x.float(), NVFP4_BLOCK_SIZE).abs().amax(dim=-1, keepdim=True)
    relative = (block_amax / FP4_E2M1.max_normal) / tensor_scale
    block_scale = round_to_minifloat(
        torch.clamp(relative, min=E4M3_MIN_NORMAL, max=FP8_E4M3.max_normal), FP8_E4M3)
    return tensor_scale, block_scale


def fake_quantize_nvfp4(x: torch.Tensor, amax: torch.Tensor | None = None) -> torch.Tensor:
    """NVFP4 round trip of ``x`` [..., D] (D divisible by 16); same shape and dtype."""
    tensor_scale, block_scale = nvfp4_scales(x, amax)
    blocks = to_blocks(x.float(), NVFP4_BLOCK_SIZE)
    reciprocal = (1.0 / tensor_scale) / block_scale
    codes = round_to_minifloat(blocks * reciprocal, FP4_E2M1)
    dequant = codes * (tensor_scale * block_scale)
    dequant = torch.where(tensor_scale == 0, 0.0, dequant)
    return dequant.to(x.dtype).reshape(x.shape)
