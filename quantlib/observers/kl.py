"""KL (entropy) calibration, TensorRT-style, with every candidate threshold at once."""

from __future__ import annotations

import torch

from quantlib.observers.base import register_observer
from quantlib.observers.stored import StoredDataObserver

_CHUNK_ELEMENTS = 2**22
_WORK_BUDGET = 2**23


def abs_histogram(values: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel histogram of |values| on [0, max|x|]: values [C, N] -> (counts int64 [C, B],
    amax [C]). Counts are int64, so no bin saturates."""
    mag = values.abs()
    amax = mag.amax().reshape(1) if len(mag) == 1 else mag.amax(dim=1)  # see channel_extremes
    # bins / amax overflows float32 for denormal ranges; scale those channels up by 2**64
    # first (exact: a power of two), so every value still lands in its own bin.
    tiny = (amax > 0) & (amax < 2.0**-64)
    if bool(tiny.any()):
        boost = torch.where(tiny, 2.0**64, 1.0).to(mag.dtype).unsqueeze(1)
        mag, amax_boosted = mag * boost, amax * boost.squeeze(1)
    else:
        amax_boosted = amax
    per_unit = torch.where(amax > 0, bins / amax_boosted, torch.zeros_like(amax))
    idx = (mag * per_unit.unsqueeze(1)).long().clamp_(max=bins - 1)
    idx += torch.arange(values.shape[0], device=values.device).unsqueeze(1) * bins
    counts = torch.bincount(idx.reshape(-1), minlength=values.shape[0] * bins)
    return counts.reshape(values.shape[0], bins), amax


def useful_cuts(hist: torch.Tensor, num_quant_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut points worth scoring: hist int64 [C, B] -> (cuts int64 [C, S], counts [C]).

    A cut at i (bins kept) with an empty bin i-1 but mass beyond it has Q = 0 where P > 0,
    so KL = +inf: only i with ``hist[i-1] > 0`` (and i = B) can win. Row c lists its
    ``counts[c]`` useful cuts first, in increasing order; the rest of the row is padding.
    """
    bins = hist.shape[1]
    kept = torch.arange(num_quant_bins, bins + 1, device=hist.device)
    useful = (hist[:, kept - 1] > 0) | (kept == bins)  # [C, S]
    order = torch.sort((~useful).to(torch.int8), dim=1, stable=True).indices
    return kept[order], useful.sum(1)


def kl_divergence_by_threshold(hist: torch.Tensor, num_quant_bins: int,
                               kept: torch.Tensor | None = None) -> torch.Tensor:
    """KL(P || Q) for candidate thresholds i (number of bins kept).

    hist int64 [C, B]; ``kept`` int64 [C, M] candidates per channel (default: every
    i = num_quant_bins..B) -> float64 [C, M]. P is ``hist[:i]`` with the outliers added to its
    last bin; Q merges ``hist[:i]`` into ``num_quant_bins`` groups (bin j goes to group
    floor(j * nq / i)) and spreads each group's mass evenly over its non-empty bins
    (TensorRT / ModelOpt's entropy calibration). Computed from prefix sums, so there is no
    loop over thresholds.
    """
    channels, bins = hist.shape
    nq = num_quant_bins
    if kept is None:
        kept = torch.arange(nq, bins + 1, device=hist.device).expand(channels, -1)
    h = hist.to(torch.float64)
    total = h.sum(dim=1, keepdim=True)  # [C, 1]
    h_log_h = torch.where(h > 0, h * torch.log(torch.where(h > 0, h, 1.0)), 0.0)
    zero = torch.zeros(channels, 1, dtype=torch.float64, device=h.device)
    cum_mass = torch.cat([zero, h.cumsum(1)], dim=1)  # [C, B+1]
    cum_nonzero = torch.cat([zero, (h > 0).to(torch.float64).cumsum(1)], dim=1)
    cum_h_log_h = torch.cat([zero, h_log_h.cumsum(1)], dim=1)

    groups = torch.arange(nq + 1, device=h.device)
    bounds = (groups * kept.unsqueeze(-1) + nq - 1) // nq  # [C, M, nq+1] = ceil(k i / nq)
    inner = torch.minimum(bounds, (kept - 1).unsqueeze(-1))  # bounds without the last bin

    def range_sum(cum: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        at = torch.gather(cum, 1, edges.reshape(channels, -1)).reshape(edges.shape)
        return at[..., 1:] - at[..., :-1]  # [C, M, nq]

    mass = range_sum(cum_mass, bounds)
    nonzero = range_sum(cum_nonzero, bounds)
    inner_mass = range_sum(cum_mass, inner)
    inner_h_log_h = range_sum(cum_h_log_h, inner)

    kept_mass = torch.gather(cum_mass, 1, kept)  # [C, M]: sum of hist[:i]
    # log of Q's (normalised) value on each non-empty bin of a group
    log_q = torch.log(torch.where(nonzero > 0, mass / nonzero.clamp(min=1), 1.0)) \
        - torch.log(kept_mass.clamp(min=1e-300)).unsqueeze(-1)
    log_total = torch.log(total.clamp(min=1e-300))
    body = (inner_h_log_h - inner_mass * (log_total.unsqueeze(-1) + log_q)).sum(-1)

    last = torch.gather(h, 1, kept - 1)  # hist[i-1]
    p_last = last + (total - kept_mass)
    last_term = torch.where(
        p_last > 0,
        p_last * (torch.log(p_last.clamp(min=1e-300)) - log_total - log_q[..., -1]),
        0.0,
    )
    kl = (body + last_term) / total.clamp(min=1e-300)
    return torch.where((p_last > 0) & (last == 0), torch.inf, kl)


@register_observer
class KLObserver(StoredDataObserver):
    """Chooses the clip threshold |x| <= t whose quantized distribution loses the least
    information (minimum KL divergence), on a ``kl_bins`` histogram of |x| per channel
    (fewer bins for channels with under 8 values per bin, see `effective_bins`).

    Per tensor, every cut point is scored (as ModelOpt's entropy calibrator does). Cuts that
    cannot win (empty last bin) are skipped; past a work budget of 2**23, many channels are
    searched coarse-to-fine (evenly spaced cuts, then every cut around the best one).
    """

    range_depends_on_bits = True

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        threshold = self.compute_threshold(values)
        return torch.maximum(self.min_val, -threshold), torch.minimum(self.max_val, threshold)

    def num_quant_bins(self) -> int:
        """Quantization steps covering [0, t]: all 2**b levels for one-sided data under
        Affine, half of them otherwise."""
        one_sided = bool((self.min_val >= 0).all() or (self.max_val <= 0).all())
        full = self.bit_type.num_levels
        return full if one_sided and not self.config.is_symmetric else full // 2

    @staticmethod
    def _best_position(hist, nq, cuts, positions) -> torch.Tensor:
        """Index into ``positions`` [C, M] (columns of ``cuts``) of each row's minimum KL,
        the last one on ties (the widest range), as ModelOpt does."""
        best = torch.empty(hist.shape[0], dtype=torch.long, device=hist.device)
        rows = max(1, _CHUNK_ELEMENTS // (positions.shape[1] * (nq + 1)))
        for start in range(0, hist.shape[0], rows):
            kept = cuts[start:start + rows].gather(1, positions[start:start + rows])
            kl = kl_divergence_by_threshold(hist[start:start + rows], nq, kept)
            best[start:start + rows] = kept.shape[1] - 1 - torch.argmin(kl.flip(1), dim=1)
        return best

    def effective_bins(self, values_per_channel: int, num_quant_bins: int) -> int:
        """``kl_bins``, or fewer for channels with few values: at least 8 values per bin on
        average (and 2 bins per quantization step). A 768-value channel spread over 2048
        bins is mostly empty bins, where KL's choice is noise."""
        return min(self.config.kl_bins, max(2 * num_quant_bins, values_per_channel // 8))

    def compute_threshold(self, values: torch.Tensor) -> torch.Tensor:
        """values [C, N] -> clip threshold t [C]."""
        nq = self.num_quant_bins()
        bins = self.effective_bins(values.shape[1], nq)
        if nq >= bins:
            return torch.maximum(-self.min_val, self.max_val)  # max |x| per channel
        # shared with `with_bit_type` copies: a bit sweep bins the data once per bin count
        hist, amax = self.derived(("abs_histogram", bins), lambda v: abs_histogram(v, bins))
        cuts, counts = useful_cuts(hist, nq)
        # Bound the work (channels x cuts x groups). Per tensor every useful cut is scored;
        # with many channels, first every k-th cut, then all cuts around the coarse winner.
        cap = max(64, _WORK_BUDGET // (hist.shape[0] * (nq + 1)))
        positions = torch.arange(int(counts.max()), device=hist.device).expand(len(counts), -1)
        if positions.shape[1] > cap:
            steps = torch.arange(cap, device=hist.device, dtype=torch.float64)
            coarse = (steps * (counts.unsqueeze(1) - 1) / (cap - 1)).round().long()  # [C, cap]
            pick = self._best_position(hist, nq, cuts, coarse)
            lo = coarse.gather(1, (pick - 1).clamp(min=0).unsqueeze(1))
            hi = coarse.gather(1, (pick + 1).clamp(max=cap - 1).unsqueeze(1))
            window = torch.arange(int((hi - lo).max()) + 1, device=hist.device)
            positions = torch.minimum(lo + window, hi)  # [C, W], padded with the last
        positions = torch.minimum(positions, (counts - 1).unsqueeze(1))
        best = cuts.gather(1, positions.gather(
            1, self._best_position(hist, nq, cuts, positions).unsqueeze(1))).squeeze(1)
        return amax * (best.to(amax.dtype) / bins)  # amax * best may overflow
