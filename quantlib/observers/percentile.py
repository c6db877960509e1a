"""Percentile clipping: keep the [1 - alpha, alpha] quantiles of the observed values."""

from __future__ import annotations

import math

import torch

from quantlib.observers.base import register_observer
from quantlib.observers.stored import StoredDataObserver


def channel_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Exact linear-interpolated quantile of each row of ``values`` [C, N] -> [C].

    Equals ``numpy.quantile(values, q, axis=1)`` (torch.quantile too, up to its float32 rank
    rounding) with no 16M-element limit: one `torch.kthvalue` finds the lower order statistic
    and a masked min the next one, so nothing is sorted.
    """
    n = values.shape[1]
    pos = q * (n - 1)
    lo = min(int(math.floor(pos)), n - 1)
    hi = min(lo + 1, n - 1)
    below = torch.kthvalue(values, lo + 1, dim=1).values
    if hi == lo:
        return below
    at_or_below = (values <= below.unsqueeze(1)).sum(dim=1)
    next_up = torch.where(values > below.unsqueeze(1), values, torch.inf).amin(dim=1)
    above = torch.where(at_or_below >= hi + 1, below, next_up)
    return torch.lerp(below, above, torch.full_like(below, pos - lo))


@register_observer
class PercentileObserver(StoredDataObserver):
    """Clips to the ``percentile_alpha`` and ``1 - percentile_alpha`` quantiles of all
    calibration values (per channel for channel_wise), ignoring rare outliers."""

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        alpha = self.config.percentile_alpha
        return channel_quantile(values, 1.0 - alpha), channel_quantile(values, alpha)
