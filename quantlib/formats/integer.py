"""Integer formats (int<b>/uint<b>) per tensor, per channel or per block of N along the last
axis, with torch.ao's rules (DESIGN.md section 2) from ``quantlib.quantizers.functional``.

Per block, the range is the block's (min, max) (or ``(-amax, amax)`` when ``amax`` is given),
and the result is bit-identical to ``torch.fake_quantize_per_channel_affine`` on the block
view [blocks, N] with axis 0.
"""

from __future__ import annotations

import torch

from quantlib.bit_type import BitType
from quantlib.formats.blocks import reduce_dims, shape_like_scale, to_blocks
from quantlib.quantizers.functional import calculate_qparams, fake_quantize_broadcast


def int_qparams(x: torch.Tensor, bit_type: BitType, symmetric: bool,
                block_size: int | None = None, axis: int | None = None,
                amax: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale float32, zero_point int64), each [1]*ndim per tensor, ndim dims with only
    ``axis`` kept per channel, or [..., D/N, 1] per block (broadcasting over ``to_blocks``)."""
    if amax is not None:
        max_val = shape_like_scale(amax, x, block_size, axis, "amax").float()
        min_val = -max_val
    elif block_size is not None:
        blocks = to_blocks(x, block_size).float()
        min_val, max_val = blocks.amin(dim=-1, keepdim=True), blocks.amax(dim=-1, keepdim=True)
    else:
        dims = reduce_dims(x, axis)
        values = x.float()
        if not dims:
            min_val = max_val = values
        else:
            min_val = values.amin(dim=dims, keepdim=True)
            max_val = values.amax(dim=dims, keepdim=True)
    return calculate_qparams(min_val, max_val, bit_type, symmetric)


def fake_quantize_int(x: torch.Tensor, bit_type: BitType, symmetric: bool = True,
                      block_size: int | None = None, axis: int | None = None,
                      amax: torch.Tensor | None = None) -> torch.Tensor:
    """Integer round trip of ``x``; same shape and dtype."""
    scale, zero_point = int_qparams(x, bit_type, symmetric, block_size, axis, amax)
    values = x if block_size is None else to_blocks(x, block_size)
    dequant = fake_quantize_broadcast(values, scale, zero_point, bit_type)
    return dequant.to(x.dtype).reshape(x.shape)
