"""OMSE: the clip range that minimises the mean squared quantization error."""

from __future__ import annotations

import torch

from quantlib.observers.base import register_observer
from quantlib.observers.stored import StoredDataObserver
from quantlib.quantizers.functional import calculate_qparams, fake_quantize_broadcast

_CHUNK_ELEMENTS = 2**24


def squared_error_by_ratio(values: torch.Tensor, min_val: torch.Tensor, max_val: torch.Tensor,
                           ratios: torch.Tensor, bit_type, symmetric: bool) -> torch.Tensor:
    """Sum of squared fake-quant error of each channel when its range is scaled by each ratio.

    values [C, N], min_val/max_val [C], ratios [R] -> float64 [R, C]. Candidates are evaluated
    in vectorised chunks of at most ``2**24`` elements.
    """
    channels, n = values.shape
    out = torch.empty(len(ratios), channels, dtype=torch.float64, device=values.device)
    step = max(1, _CHUNK_ELEMENTS // max(values.numel(), 1))
    for start in range(0, len(ratios), step):
        r = ratios[start:start + step].to(values.device).reshape(-1, 1)  # [R, 1]
        scale, zero = calculate_qparams(min_val * r, max_val * r, bit_type, symmetric)  # [R, C]
        deq = fake_quantize_broadcast(values, scale.unsqueeze(-1), zero.unsqueeze(-1), bit_type)
        out[start:start + step] = (deq - values).pow(2).sum(dim=-1, dtype=torch.float64)
    return out


@register_observer
class OmseObserver(StoredDataObserver):
    """Tries ``omse_steps`` clip ranges ``r * [min, max]`` with r in (0, 1] and keeps, per
    channel, the one with the least squared error over all calibration values."""

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        steps = self.config.omse_steps
        ratios = torch.arange(1, steps + 1, dtype=torch.float32) / steps
        errors = squared_error_by_ratio(values, self.min_val, self.max_val, ratios,
                                        self.bit_type, self.config.is_symmetric)
        # On ties prefer the widest range (largest ratio): flip, argmin, flip back.
        best = len(ratios) - 1 - torch.argmin(errors.flip(0), dim=0)
        best_ratio = ratios.to(values.device)[best]
        return self.min_val * best_ratio, self.max_val * best_ratio
