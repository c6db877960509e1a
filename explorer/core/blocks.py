"""Block aggregation of 2-D maps (pure torch): the server sends at most 256 x 256 cells; and
the per-channel view of block-wise clip ranges (`channel_clip_range`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_HEATMAP_SIDE = 256
BLOCK_REDUCTIONS = ("mean", "max")


def block_reduce(
    error: torch.Tensor, max_side: int = MAX_HEATMAP_SIDE, reduce: str = "mean"
) -> tuple[torch.Tensor, int, int]:
    """Aggregate ``|error|`` [R, C] over blocks to at most ``max_side`` x ``max_side`` cells.

    Blocks are ``row_block = ceil(R / max_side)`` by ``col_block = ceil(C / max_side)``; the
    last block of a row or column may be partial, and its mean is over its real elements only.
    Returns ``(reduced [ceil(R/row_block), ceil(C/col_block)], row_block, col_block)``.
    """
    if reduce not in BLOCK_REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; valid choices: {BLOCK_REDUCTIONS}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive integer, got {max_side!r}")
    magnitude = torch.as_tensor(error).detach()
    if magnitude.ndim != 2 or magnitude.numel() == 0:
        raise ValueError(
            f"error must be a non-empty 2-D tensor [R, C], got {tuple(magnitude.shape)}"
        )
    magnitude = magnitude.abs().to(torch.promote_types(magnitude.dtype, torch.float32))
    rows, cols = magnitude.shape
    row_block, col_block = math.ceil(rows / max_side), math.ceil(cols / max_side)
    out_rows, out_cols = math.ceil(rows / row_block), math.ceil(cols / col_block)
    # |error| >= 0, so zero padding changes neither block sums nor block maxima.
    padded = F.pad(magnitude, (0, out_cols * col_block - cols, 0, out_rows * row_block - rows))
    blocks = padded.reshape(out_rows, row_block, out_cols, col_block)
    if reduce == "max":
        return blocks.amax(dim=(1, 3)), row_block, col_block
    row_counts = _block_sizes(rows, row_block, out_rows)
    col_counts = _block_sizes(cols, col_block, out_cols)
    counts = torch.outer(row_counts, col_counts).to(magnitude.dtype)
    return blocks.sum(dim=(1, 3)) / counts, row_block, col_block


def _block_sizes(length: int, block: int, num_blocks: int) -> torch.Tensor:
    """Number of real elements in each of ``num_blocks`` blocks covering ``length`` [num_blocks]."""
    return (length - torch.arange(num_blocks) * block).clamp(max=block)


def channel_clip_range(quantizer, rows_are_channels: bool,
                       channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The representable range per channel, (lo [C], hi [C]): a per-tensor range expanded, a
    per-channel one as is, and block ranges reduced to the widest of each channel's blocks
    (the weight: its row's blocks [out, in/N]; outputs/inputs: the blocks holding the channel
    over every sample, [..., D/N])."""
    lo, hi = (t.detach().float() for t in quantizer.clip_range())
    if lo.numel() == 1:
        return lo.reshape(-1).expand(channels).clone(), hi.reshape(-1).expand(channels).clone()
    if quantizer.block_size is None:
        return lo.reshape(-1).clone(), hi.reshape(-1).clone()
    if rows_are_channels:
        return lo.amin(-1).reshape(-1), hi.amax(-1).reshape(-1)
    block = quantizer.block_size
    lo, hi = lo.reshape(-1, lo.shape[-1]).amin(0), hi.reshape(-1, hi.shape[-1]).amax(0)
    return (lo.repeat_interleave(block)[:channels].clone(),
            hi.repeat_interleave(block)[:channels].clone())
