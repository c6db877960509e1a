"""OMSE: the clip range that minimises the mean squared quantization error."""

from __future__ import annotations

import torch

from quantlib.formats.grid import signed_grid
from quantlib.observers.base import channel_extremes, register_observer
from quantlib.observers.stored import StoredDataObserver
from quantlib.quantizers.format_ops import fake_quantize_any, range_to_qparams
from quantlib.quantizers.functional import calculate_qparams

_CHUNK_ELEMENTS = 2**24
SUMMARY_BINS = 4096  # above 16 values per bin, candidates are scored on a histogram summary
COARSE_STRIDE = 5  # past _EXHAUSTIVE_WORK, try every 5th ratio, then refine around the best
_EXHAUSTIVE_WORK = 2**24
#: All candidates of one search together cost at most this many work units (see
#: `OmseObserver.candidate_cost`), whatever ``omse_steps`` and ``bits``.
TOTAL_WORK_BUDGET = 3 * 2**23
MIN_CANDIDATES_PER_LEVEL = 5


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
        if bit_type.is_float:  # FP8: the candidate's real (non-uniform) grid
            scale, zero = range_to_qparams(min_val * r, max_val * r, bit_type)  # [R, C]
            sq = torch.square(fake_quantize_any(values, scale.unsqueeze(-1),
                                                zero.unsqueeze(-1), bit_type) - values)
        else:
            scale, zero = calculate_qparams(min_val * r, max_val * r, bit_type, symmetric)
            scale, zero = scale.unsqueeze(-1), zero.unsqueeze(-1).to(torch.float32)
            # fake_quantize with the zero point folded into the clamp bounds (exact: integers)
            steps = torch.round(values * torch.reciprocal(scale))
            steps = torch.clamp(steps, bit_type.qmin - zero, bit_type.qmax - zero)
            sq = torch.square(steps * scale - values)
        if weights is not None:
            sq = sq.double() * weights
        out[start:start + step] = sq.sum(dim=-1, dtype=torch.float64)
    return out


def squared_error_sorted(ordered: torch.Tensor, prefix: torch.Tensor, prefix_sq: torch.Tensor,
                         min_val: torch.Tensor, max_val: torch.Tensor, ratios: torch.Tensor,
                         bit_type, symmetric: bool) -> torch.Tensor:
    """`squared_error_by_ratio` from one sorted copy: O(levels * log N) per candidate.

    ``ordered`` [C, N] holds each channel's values sorted; ``prefix``/``prefix_sq`` [C, N+1]
    their float64 running sums of x and x^2. Values between two decision boundaries
    (q - zp + 1/2) * s share the code q, so their error is sum x^2 - 2 d sum x + n d^2 with
    d = (q - zp) * s (FP8: d = element * s, boundaries midway between elements). A value
    exactly on a boundary has the same error either way, so the
    result equals the element-wise sum up to float64 rounding.
    """
    channels = ordered.shape[0]
    if bit_type.is_float:  # FP8: the element grid, scaled by amax / max_finite
        levels = signed_grid(bit_type.format).to(ordered.device, torch.float64)
    else:
        levels = torch.arange(bit_type.qmin, bit_type.qmax + 1, device=ordered.device,
                              dtype=torch.float64)  # [L]
    out = torch.empty(len(ratios), channels, dtype=torch.float64, device=ordered.device)
    step = max(1, _CHUNK_ELEMENTS // (channels * len(levels)))
    for start in range(0, len(ratios), step):
        r = ratios[start:start + step].to(ordered.device)
        r = r.reshape(-1, 1) if r.dim() == 1 else r
        scale, zero = range_to_qparams(min_val * r, max_val * r, bit_type, symmetric)  # [R, C]
        s64 = scale.double().T.unsqueeze(-1)  # [C, R, 1]
        offset = levels - zero.double().T.unsqueeze(-1)  # [C, R, L]: q - zp (FP8: elements)
        # decision boundaries: midway between neighbouring levels
        bounds = ((offset[..., :-1] + offset[..., 1:]) * 0.5 * s64).float()  # [C, R, L-1]
        cut = torch.searchsorted(ordered, bounds.reshape(channels, -1)).reshape(bounds.shape)
        edges = torch.cat([torch.zeros_like(cut[..., :1]), cut,
                           torch.full_like(cut[..., :1], ordered.shape[1])], dim=-1)
        flat = edges.reshape(channels, -1)
        count = (edges[..., 1:] - edges[..., :-1]).double()
        total = torch.gather(prefix, 1, flat).reshape(edges.shape).diff(dim=-1)
        total_sq = torch.gather(prefix_sq, 1, flat).reshape(edges.shape).diff(dim=-1)
        d = offset * s64  # dequantized value of each code
        err = (total_sq - 2 * d * total + count * d * d).sum(-1)  # [C, R]
        out[start:start + step] = err.clamp(min=0).T
    return out


def sorted_prefix_sums(values: torch.Tensor):
    """values [C, N] -> (sorted float32 [C, N], float64 prefix sums of x and x^2 [C, N+1])."""
    ordered = torch.sort(values, dim=1).values.contiguous()
    zero = torch.zeros(len(ordered), 1, dtype=torch.float64, device=values.device)
    as64 = ordered.double()
    return (ordered, torch.cat([zero, as64.cumsum(1)], dim=1),
            torch.cat([zero, (as64 * as64).cumsum(1)], dim=1))


def histogram_summary(values: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress each channel to ``bins`` equal-width bins on [min, max]: values [C, N] ->
    (bin means float32 [C, B], counts float64 [C, B]). Empty bins have count 0."""
    channels = values.shape[0]
    lo, hi = channel_extremes(values)
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
    calibrator does, which costs O(bins) instead of O(N) per candidate.

    Work budget, whatever ``omse_steps`` and ``bits``: scoring one ratio for all C channels
    costs `candidate_cost` units (C x N element-wise, C x 3 x 2**bits on the sorted copy,
    C x 4096 on the summary).

    - When candidates x values exceed 2**24, every 5th ratio is tried first, then the 9
      ratios around the best.
    - If that plan would cost over `TOTAL_WORK_BUDGET` (3 * 2**23 units, about 1.5x the
      default 8-bit channel_wise search of a 768 x 768 layer), the search narrows level by
      level instead: at most k evenly spaced ratios per level (k >= 5, the largest that
      fits), then the ratios within one stride of the winner, and so on down to stride 1.
    - If even 5 per level to stride 1 is over budget (e.g. 12-bit channel_wise outputs with
      1000 steps), refinement stops at the last level that fits: the ratio is then found to
      within that level's stride. The first level always runs, so only a layer whose 5
      candidates exceed the budget (far past 768 x 768) can go over it.
    - ``last_search_work`` holds the units the last search scored.
    """

    range_depends_on_bits = True

    def reset(self) -> None:
        super().reset()
        self.last_search_work = 0

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        steps = self.config.omse_steps
        ratios = torch.arange(1, steps + 1, dtype=torch.float32, device=values.device) / steps
        score, unit = self._scorer(values)
        self.last_search_work = 0

        def best_of(index: torch.Tensor) -> torch.Tensor:  # index [R] or [R, C] -> [C]
            self.last_search_work += index.shape[0] * unit
            pick = _last_argmin(score(ratios[index]))
            return index[pick] if index.dim() == 1 else index.gather(0, pick.unsqueeze(0))[0]

        if values.numel() * steps <= _EXHAUSTIVE_WORK:
            plan = [1]
        else:
            plan = search_plan(steps, unit)
        # every plan[0]-th ratio (and r = 1); then, level by level, the ratios within one
        # stride of the winner, every plan[k]-th, aligned to the window's top
        stride = plan[0]
        first = torch.arange(stride - 1, steps, stride, device=values.device)
        if int(first[-1]) != steps - 1:
            first = torch.cat([first, first.new_tensor([steps - 1])])
        best = best_of(first)
        for next_stride in plan[1:]:
            lo, hi = (best - stride + 1).clamp(min=0), (best + stride - 1).clamp(max=steps - 1)
            stride = next_stride
            width = int((hi - lo).max()) + 1
            back = torch.arange((width - 1) // stride * stride, -1, -stride,
                                device=values.device).flip(0)  # [W], ascending window
            best = best_of(torch.maximum(hi.unsqueeze(0) - back.unsqueeze(1), lo.unsqueeze(0)))
        best_ratio = ratios[best]
        return self.min_val * best_ratio, self.max_val * best_ratio

    def candidate_cost(self, values: torch.Tensor) -> int:
        """Work units to score one ratio for every channel of ``values`` [C, N]."""
        return self._scorer(values)[1]

    def _scorer(self, values: torch.Tensor):
        """(ratios -> squared error [R, C], work units per ratio), by the cheapest
        exact-enough route: a histogram summary for huge channels, prefix sums over one
        sorted copy when N >= 3 * 2**bits, else element-wise fake quantization."""
        args = (self.min_val, self.max_val)
        kind = (self.bit_type, self.config.is_symmetric)
        channels, n = values.shape
        if n > 16 * SUMMARY_BINS:
            means, counts = self.derived("summary", lambda v: histogram_summary(v, SUMMARY_BINS))
            return (lambda r: squared_error_by_ratio(means, *args, r, *kind, counts),
                    channels * SUMMARY_BINS)
        levels = self.bit_type.num_levels
        if 3 * levels <= n:  # measured crossover of the two routes
            ordered, prefix, prefix_sq = self.derived("sorted", sorted_prefix_sums)
            return (lambda r: squared_error_sorted(ordered, prefix, prefix_sq, *args, r, *kind),
                    channels * 3 * levels)
        return lambda r: squared_error_by_ratio(values, *args, r, *kind), channels * n


def search_plan(steps: int, unit: int) -> list[int]:
    """Strides of a coarse-to-fine search over ``steps`` candidates costing ``unit`` each:
    [5, 1] (every 5th, then the 9 around the winner) when that fits `TOTAL_WORK_BUDGET`,
    else the cheapest-fitting level-by-level plan with at most k candidates per level,
    k >= `MIN_CANDIDATES_PER_LEVEL`."""
    if steps < 2 * COARSE_STRIDE:
        return [1]  # fewer candidates than the coarse-to-fine plan scores
    legacy = [COARSE_STRIDE, 1]
    if plan_cost(steps, legacy) * unit <= TOTAL_WORK_BUDGET:
        return legacy
    best = None
    for k in range(min(steps, 64), MIN_CANDIDATES_PER_LEVEL - 1, -1):
        plan, width = [], steps
        while width > k:
            stride = -(-width // k)
            plan.append(stride)
            width = 2 * stride - 1
        plan.append(1)
        if best is None or plan_cost(steps, plan) < plan_cost(steps, best):
            best = plan
        if plan_cost(steps, plan) * unit <= TOTAL_WORK_BUDGET:
            return plan
    # Even the cheapest full plan is over budget: stop refining where the budget runs out
    # (the first level always runs), so the ratio is found to a coarser stride.
    while len(best) > 1 and plan_cost(steps, best) * unit > TOTAL_WORK_BUDGET:
        best = best[:-1]
    return best


def plan_cost(steps: int, plan: list[int]) -> int:
    """Candidates (per channel) a plan scores at most."""
    total, width = 0, steps
    for stride in plan:
        total += -(-width // stride)
        width = 2 * stride - 1
    return total


def _last_argmin(errors: torch.Tensor) -> torch.Tensor:
    """Row index of each channel's least error; on ties the last (widest range)."""
    return errors.shape[0] - 1 - torch.argmin(errors.flip(0), dim=0)
