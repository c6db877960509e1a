"""Shapes shared by the format kernels: blocks along the last axis, channels along an axis."""

from __future__ import annotations

import torch


def check_block_size(x: torch.Tensor, block_size: int, name: str) -> None:
    """Raise ValueError unless ``block_size`` is a positive int dividing ``x``'s last axis."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{name}: block_size must be a positive integer, got {block_size!r}")
    if x.dim() == 0 or x.shape[-1] % block_size != 0:
        last = x.shape[-1] if x.dim() else "a 0-d tensor"
        raise ValueError(f"{name}: block_size {block_size} must divide the last dimension "
                         f"(size {last}) of a tensor of shape {tuple(x.shape)}")


def to_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """``x`` [..., D] viewed as [..., D/N, N]: one row per block of N along the last axis."""
    return x.reshape(*x.shape[:-1], x.shape[-1] // block_size, block_size)


def reduce_dims(x: torch.Tensor, axis: int | None) -> tuple[int, ...]:
    """Dims to reduce for one value per tensor (``axis`` None) or per index along ``axis``."""
    if axis is None:
        return tuple(range(x.dim()))
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    axis %= x.dim()
    return tuple(d for d in range(x.dim()) if d != axis)


def scale_shape(x: torch.Tensor, block_size: int | None, axis: int | None) -> tuple[int, ...]:
    """The keepdim shape of a per-tensor, per-channel or per-block statistic (see abs_max)."""
    if block_size is not None:
        return (*x.shape[:-1], x.shape[-1] // block_size, 1)
    dims = reduce_dims(x, axis)
    return tuple(1 if d in dims else n for d, n in enumerate(x.shape))


def shape_like_scale(value: torch.Tensor, x: torch.Tensor, block_size: int | None,
                     axis: int | None, what: str) -> torch.Tensor:
    """A given per-tensor/channel/block statistic (one value, or one per scale, in any shape
    with that many elements) reshaped to ``scale_shape``; ValueError otherwise."""
    value = torch.as_tensor(value, device=x.device)
    shape = scale_shape(x, block_size, axis)
    if value.numel() == 1:
        return value.reshape([1] * len(shape))
    count = 1
    for n in shape:
        count *= n
    if value.numel() != count:
        raise ValueError(f"{what} must hold 1 or {count} values (one per scale, shape "
                         f"{shape}), got shape {tuple(value.shape)}")
    return value.reshape(shape)


def abs_max(x: torch.Tensor, block_size: int | None, axis: int | None) -> torch.Tensor:
    """max|x| per tensor (shape [1]*ndim), per channel (ndim dims, size 1 except ``axis``) or
    per block ([..., D/N, 1] over the block view), in ``x``'s dtype; broadcasts against ``x``
    (or its block view)."""
    if block_size is not None:
        return to_blocks(x, block_size).abs().amax(dim=-1, keepdim=True)
    dims = reduce_dims(x, axis)
    if not dims:  # 0-d tensor
        return x.abs()
    return x.abs().amax(dim=dims, keepdim=True)
