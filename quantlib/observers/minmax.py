"""Range observers from running minima/maxima."""

from __future__ import annotations

import torch

from quantlib.observers.base import BaseObserver, register_observer


@register_observer
class MinmaxObserver(BaseObserver):
    """The full observed range: min and max over all updates (torch.ao's MinMaxObserver)."""

    def _observe(self, flat, batch_min, batch_max) -> None:
        self._track_min_max(batch_min, batch_max)

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.min_val, self.max_val


@register_observer
class EmaMinmaxObserver(BaseObserver):
    """Exponential moving average of per-batch min/max: ``m * old + (1 - m) * batch``.

    The first batch sets the range; ``ema_momentum`` (m) comes from the config.
    """

    def _observe(self, flat, batch_min, batch_max) -> None:
        if self.min_val is None:
            self.min_val, self.max_val = batch_min, batch_max
            return
        m = self.config.ema_momentum
        self.min_val = m * self.min_val + (1.0 - m) * batch_min
        self.max_val = m * self.max_val + (1.0 - m) * batch_max

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.min_val, self.max_val
