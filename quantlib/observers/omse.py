"""OMSE: the clip range that minimises the mean squared quantization error."""

from __future__ import annotations

import torch

from quantlib.observers.base import register_observer
from quantlib.observers.stored import StoredDataObserver
from quantlib.quantizers.functional import calculate_qparams, fake_quantize_broadcast

_CHUNK_ELEMENTS = 2**24
SUMMARY_BINS = 4096  # above 16 values per bin, candidates are scored on a histogram summary
COARSE_STRIDE = 5  # past _EXHAUSTIVE_WORK, try every 5th ratio, then refine around the best
_EXHAUSTIVE_WORK = 2**24


def squared_error_by_ratio(values: torch.Tensor, min_val: torch.Tensor, max_val: torch.Tensor,
                           ratios: torch.Tensor, bit_type, symmetric: bool,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of squared fake-quant error of each channel when its range is scaled by each ratio.

    values [C, N] (optionally ``weights`` [C, N], e.g. histogram counts), min_val/max_val [C],
    ratios [R] (shared) or [R, C] (per channel) -> float64 [R, C]. Candidates run in vectorised
    chunks of <= 2**24 elements.
    """
    out = torch.empty(len(ratios), values.shape[0], dtype=torch.float64, device=values.device)
    step = max(1, _CHUNK_ELEMENTS // max(values.numel(), 1))
    for start in range(0, len(ratios), step):
        r = ratios[start:start + step].to(values.device)
        r = r.reshape(-1, 1) if r.dim() == 1 else r  # [R, 1] or [R, C]
        scale, zero = calculate_qparams(min_val * r, max_val * r, bit_type, symmetric)  # [R, C]
        deq = fake_quantize_broadcast(values, scale.unsqueeze(-1), zero.unsqueeze(-1), bit_type)
        sq = (deq - values).pow(2)
        if weights is not None:
            sq = sq.double() * weights
        out[start:start + step] = sq.sum(dim=-1, dtype=torch.float64)
    return out


def histogram_summary(values: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress each channel to ``bins`` equal-width bins on [min, max]: values [C, N] ->
    (bin means float32 [C, B], counts float64 [C, B]). Empty bins have count 0."""
    channels = values.shape[0]
    lo, hi = torch.aminmax(values, dim=1)
    width = torch.where(hi > lo, (hi - lo) / bins, torch.ones_like(hi))
    idx = ((values - lo.unsqueeze(1)) / width.unsqueeze(1)).long().clamp_(0, bins - 1)
    idx += torch.arange(channels, device=values.device).unsqueeze(1) * bins
    flat = idx.reshape(-1)
    counts = torch.bincount(flat, minlength=channels * bins).reshape(channels, bins)
    sums = torch.bincount(flat, weights=values.reshape(-1).double(), minlength=channels * bins)
    means = (sums.reshape(channels, bins) / counts.clamp(min=1)).float()
    return means, counts.double()


@register_observer
class OmseObserver(StoredDataObserver):
    """Tries ``omse_steps`` clip ranges ``r * [min, max]`` with r in (0, 1] and keeps, per
    channel, the one with the least squared error over all calibration values.

    Up to 16 values per histogram bin the error is exact; past that each channel is
    summarised by a 4096-bin histogram (bin means weighted by counts), as ModelOpt's MSE
    calibrator does, which costs O(bins) instead of O(N) per candidate. When candidates x
    values exceed 2**24, every 5th ratio is tried first, then every ratio around the best.
    """

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        steps = self.config.omse_steps
        ratios = torch.arange(1, steps + 1, dtype=torch.float32, device=values.device) / steps
        weights = None
        if values.shape[1] > 16 * SUMMARY_BINS:
            values, weights = histogram_summary(values, SUMMARY_BINS)
        stride = COARSE_STRIDE if values.numel() * steps > _EXHAUSTIVE_WORK else 1
        candidates = torch.arange(stride - 1, steps, stride, device=values.device)
        if int(candidates[-1]) != steps - 1:
            candidates = torch.cat([candidates, candidates.new_tensor([steps - 1])])
        best = candidates[self._last_argmin(values, weights, ratios[candidates])]  # [C]
        if stride > 1:  # refine: every ratio within one coarse step of the coarse winner
            offsets = torch.arange(1 - stride, stride, device=values.device).unsqueeze(1)
            window = (best.unsqueeze(0) + offsets).clamp(0, steps - 1)  # [W, C]
            pick = self._last_argmin(values, weights, ratios[window])
            best = window.gather(0, pick.unsqueeze(0)).squeeze(0)
        best_ratio = ratios[best]
        return self.min_val * best_ratio, self.max_val * best_ratio

    def _last_argmin(self, values, weights, ratios) -> torch.Tensor:
        """Row index of each channel's least error; on ties the last (widest range)."""
        errors = squared_error_by_ratio(values, self.min_val, self.max_val, ratios,
                                        self.bit_type, self.config.is_symmetric, weights)
        return errors.shape[0] - 1 - torch.argmin(errors.flip(0), dim=0)
