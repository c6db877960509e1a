"""Percentile clipping: keep the [1 - alpha, alpha] quantiles of the observed values."""

from __future__ import annotations

import math

import torch

from quantlib.observers.base import register_observer
from quantlib.observers.stored import StoredDataObserver

_SELECT_BINS = 4096
_SORT_BELOW = 65536


def order_statistics(values: torch.Tensor, ranks: list[int]) -> list[float]:
    """Exact values at 0-based sorted positions ``ranks`` of a 1-D tensor, without sorting it.

    One pass bins the values into 4096 equal-width bins (a monotone map, so bins keep the
    order); only the bins that hold the wanted ranks are selected and searched again, down to
    a sort of at most 64K values. Costs a few linear passes instead of a full `kthvalue`.
    """
    if values.numel() <= _SORT_BELOW:
        ordered = torch.sort(values).values
        return [float(ordered[r]) for r in ranks]
    lo, hi = torch.aminmax(values)
    if bool(lo == hi):
        return [float(lo)] * len(ranks)
    idx = ((values - lo) * (_SELECT_BINS / (hi - lo))).int().clamp_(0, _SELECT_BINS - 1)
    cum = torch.bincount(idx, minlength=_SELECT_BINS).cumsum(0)
    wanted = torch.tensor(ranks, device=cum.device)
    bins = torch.searchsorted(cum, wanted, right=True).tolist()
    before = [0 if b == 0 else int(cum[b - 1]) for b in bins]
    out: list[float] = []
    for b in sorted(set(bins)):
        members = [i for i, bb in enumerate(bins) if bb == b]
        subset = values[idx == b]
        if subset.numel() > values.numel() // 2:  # no progress: fall back to kthvalue
            found = [float(torch.kthvalue(values, ranks[i] + 1).values) for i in members]
        else:
            found = order_statistics(subset, [ranks[i] - before[i] for i in members])
        out.extend(zip(members, found))
    return [v for _, v in sorted(out)]


def _interpolation_points(n: int, q: float) -> tuple[int, int, float]:
    pos = q * (n - 1)
    lo = min(int(math.floor(pos)), n - 1)
    return lo, min(lo + 1, n - 1), pos - lo


def channel_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Exact linear-interpolated quantile of each row of ``values`` [C, N] -> [C].

    Equals ``numpy.quantile(values, q, axis=1)`` (torch.quantile too, up to its float32 rank
    rounding) with no 16M-element limit: one `torch.kthvalue` finds the lower order statistic
    and a masked min the next one, so nothing is sorted.
    """
    n = values.shape[1]
    lo, hi, frac = _interpolation_points(n, q)
    below = torch.kthvalue(values, lo + 1, dim=1).values
    if hi == lo:
        return below
    at_or_below = (values <= below.unsqueeze(1)).sum(dim=1)
    next_up = torch.where(values > below.unsqueeze(1), values, torch.inf).amin(dim=1)
    above = torch.where(at_or_below >= hi + 1, below, next_up)
    return torch.lerp(below, above, torch.full_like(below, frac))


def tensor_quantiles(values: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """Exact quantiles ``qs`` of all of ``values`` (any shape) -> [len(qs)], as numpy.quantile,
    from one shared `order_statistics` selection."""
    flat = values.reshape(-1)
    points = [_interpolation_points(flat.numel(), q) for q in qs]
    ranks = sorted({r for lo, hi, _ in points for r in (lo, hi)})
    stats = dict(zip(ranks, order_statistics(flat, ranks)))
    below = torch.tensor([stats[lo] for lo, _, _ in points], dtype=values.dtype)
    above = torch.tensor([stats[hi] for _, hi, _ in points], dtype=values.dtype)
    frac = torch.tensor([f for _, _, f in points], dtype=values.dtype)
    return torch.lerp(below, above, frac).to(values.device)


@register_observer
class PercentileObserver(StoredDataObserver):
    """Clips to the ``percentile_alpha`` and ``1 - percentile_alpha`` quantiles of all
    calibration values (per channel for channel_wise), ignoring rare outliers."""

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        alpha = self.config.percentile_alpha
        if values.shape[0] == 1:
            low, high = tensor_quantiles(values, [1.0 - alpha, alpha])
            return low.reshape(1), high.reshape(1)
        return channel_quantile(values, 1.0 - alpha), channel_quantile(values, alpha)
