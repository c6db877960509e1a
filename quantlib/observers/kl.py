"""KL (entropy) calibration, TensorRT-style, with every candidate threshold at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from quantlib.formats.grid import nonnegative_grid
from quantlib.observers.base import channel_extremes, register_observer
from quantlib.observers.stored import StoredDataObserver

_CHUNK_ELEMENTS = 2**22
#: From this many values, `abs_histogram` counts on every intra-op thread, each counting its
#: own share of blocks of up to PARALLEL_BLOCK_ELEMENTS values into its own counts (no
#: thread waits on another until the final sum; 16M values: 46 -> 24 ms on 2 cores).
PARALLEL_HISTOGRAM_ELEMENTS = 2**21
PARALLEL_BLOCK_ELEMENTS = 2**18
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kl-histogram")
#: Blocks of values and of (cut, group) terms stay under 2**15 elements: in cache, and under
#: torch's parallel grain (32768), so each kernel runs on one thread. On a shared machine a
#: two-thread kernel waits for a descheduled thread (10x slower under load).
_SERIAL_ELEMENTS = 2**15 - 1
_WORK_BUDGET = 2**23  # channels x cuts x (groups + 1) scored per level, before the floor
#: The whole search (every level) scores at most this many channel x cut x group units, and
#: the histogram holds at most _HISTOGRAM_CELLS channel x bin counts; past either, the search
#: runs at a coarser resolution (see `KLObserver.search_resolution`).
TOTAL_WORK_BUDGET = 2**24
HISTOGRAM_CELLS = 2**22
MIN_CUTS_PER_LEVEL = 32  # fewer misses KL's jagged minimum (8 per level lost 1 dB)


def abs_histogram(values: torch.Tensor, bins: int,
                  amax: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel histogram of |values| on [0, max|x|]: values [C, N] -> (counts int64 [C, B],
    amax [C]). Value x goes to bin min(floor(|x| * (B / amax)), B - 1) (float32 product).
    Counts are int64, so no bin saturates. ``amax`` [C], when the caller already knows it
    (max(-min, max) per channel), saves a pass.

    One pass over the data, in blocks of under 2**15 values (see `_SERIAL_ELEMENTS`; 2**18 on
    each of several threads for large tensors, see `PARALLEL_HISTOGRAM_ELEMENTS`): each
    block's ``trunc(|x| * (B / amax))`` (|x * s| = |x| * s exactly: float rounding is
    sign-symmetric) is cast to int32 and counted on B + 1 bins per channel (bin B holds
    |x| = amax), in cache, so the data is read once and nothing of its size is allocated.
    """
    channels, length = values.shape
    if amax is None:
        low, high = channel_extremes(values)
        amax = torch.maximum(-low, high)
    amax = amax.to(values.dtype)
    # bins / amax overflows float32 for denormal ranges; scale those channels up by 2**64
    # first (exact: a power of two), so every value still lands in its own bin.
    tiny = (amax > 0) & (amax < 2.0**-64)
    if bool(tiny.any()):
        boost = torch.where(tiny, 2.0**64, 1.0).to(values.dtype)
        values, amax_boosted = values * boost.unsqueeze(1), amax * boost
    else:
        amax_boosted = amax
    per_unit = torch.where(amax > 0, bins / amax_boosted, torch.zeros_like(amax))
    width = bins + 1  # bins 0..B-1, and B for |x| * s >= B (|x| = amax, or rounding up)
    counts = torch.zeros(channels, width, dtype=torch.int64, device=values.device)
    if length == 0:
        return counts[:, :bins].contiguous(), amax
    workers = _histogram_workers(values)
    block_elements = _SERIAL_ELEMENTS if workers == 1 else PARALLEL_BLOCK_ELEMENTS
    rows = max(1, min(channels, block_elements // length, 2**31 // width))
    cols = length if rows > 1 else min(length, block_elements)
    blocks = [(r0, min(channels, r0 + rows), c0) for r0 in range(0, channels, rows)
              for c0 in range(0, length, cols)]
    row_scale = per_unit.tolist() if rows == 1 else None  # a float32 scalar multiplies faster

    def count(part: list[tuple[int, int, int]], counts: torch.Tensor) -> torch.Tensor:
        scaled_buf = torch.empty(rows * cols, dtype=values.dtype, device=values.device)
        index_buf = torch.empty(rows * cols, dtype=torch.int32, device=values.device)
        offsets = (torch.arange(rows, dtype=torch.int32, device=values.device)
                   * width).unsqueeze(1)
        for r0, r1, c0 in part:
            block = values[r0:r1, c0:c0 + cols]
            scaled = scaled_buf[:block.numel()].view(block.shape)
            torch.mul(block, row_scale[r0] if r1 - r0 == 1 else per_unit[r0:r1].unsqueeze(1),
                      out=scaled)
            scaled.abs_()
            index = index_buf[:block.numel()].view(block.shape)
            index.copy_(scaled)  # truncates toward zero: floor, as |x| * s >= 0
            if r1 - r0 > 1:
                index += offsets[:r1 - r0]
            out = counts[r0:r1].view(-1)
            out += torch.bincount(index.view(-1), minlength=out.numel())
        return counts

    if workers == 1:
        count(blocks, counts)
    else:  # each thread counts a run of blocks into its own counts, then one sum
        share = -(-len(blocks) // workers)
        parts = [blocks[w * share:(w + 1) * share] for w in range(workers)]
        for partial in _POOL.map(count, parts, [torch.zeros_like(counts) for _ in parts]):
            counts += partial
    counts[:, bins - 1] += counts[:, bins]
    return counts[:, :bins].contiguous(), amax


def _histogram_workers(values: torch.Tensor) -> int:
    """Threads `abs_histogram` counts with: torch's intra-op thread count (at most 8) for a
    large CPU tensor, else one."""
    if values.device.type != "cpu" or values.numel() < PARALLEL_HISTOGRAM_ELEMENTS:
        return 1
    return max(1, min(8, torch.get_num_threads()))


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
                               kept: torch.Tensor | None = None,
                               edges: torch.Tensor | None = None) -> torch.Tensor:
    """KL(P || Q) for candidate thresholds i (number of bins kept).

    hist int64 [C, B]; ``kept`` int64 [C, M] candidates per channel (default: every
    i = num_quant_bins..B) -> float64 [C, M]. P is ``hist[:i]`` with the outliers added to its
    last bin; Q merges ``hist[:i]`` into ``num_quant_bins`` groups (bin j goes to group
    floor(j * nq / i)) and spreads each group's mass evenly over its non-empty bins
    (TensorRT / ModelOpt's entropy calibration). Computed from prefix sums, so there is no
    loop over thresholds.

    ``edges`` int64 [nq + 1], increasing from 0, makes the groups non-uniform, for a float
    format's grid scaled to integers (levels / smallest step): bin j goes to the group k with
    ``edges[k] <= j * edges[-1] / i < edges[k + 1]`` (its values lie between the grid's
    levels k and k + 1 once i bins map onto [0, max_finite]). Integer arithmetic, so a bin
    edge that falls exactly on a level lands in the same group as the exact rational would.

    With T the total count, K = sum(hist[:i]), m_g and n_g group g's mass and non-empty
    bins, G the last group and P_last = hist[i-1] + T - K, the sums over bins telescope to

        T * KL = sum_{j < i-1} h_j log h_j - T log(T / K) - sum_g m_g log(m_g / n_g)
                 - (T - K) log(m_G / n_G) + P_last log P_last,

    so each (cut, group) pair costs one term, m_g log(m_g / n_g) (m_g / n_g >= 1 when
    m_g > 0: every non-empty bin holds at least one count). The [C, M, groups] terms are
    built in blocks of under 2**15 values, so each block stays in cache and runs on one
    thread (a busy machine stalls multi-threaded kernels).
    """
    channels, bins = hist.shape
    nq = num_quant_bins
    if kept is None:
        kept = torch.arange(nq, bins + 1, device=hist.device).expand(channels, -1)
    cuts = kept.shape[1]
    h = hist.to(torch.float64)
    zero = torch.zeros(channels, 1, dtype=torch.float64, device=h.device)
    cum_mass = torch.cat([zero, h.cumsum(1)], dim=1)  # [C, B+1]
    cum_nonzero = torch.cat([zero, (h > 0).to(torch.float64).cumsum(1)], dim=1)
    cum_h_log_h = torch.cat([zero, torch.xlogy(h, h).cumsum(1)], dim=1)
    total = cum_mass[:, -1:].clamp(min=1e-300)  # [C, 1]

    # sum_g m_g log(m_g / n_g) per cut, and log(m_G / n_G) of the last group
    group_sum = torch.empty(channels, cuts, dtype=torch.float64, device=h.device)
    last_log = torch.empty(channels, cuts, dtype=torch.float64, device=h.device)
    groups = torch.arange(nq + 1, device=h.device)
    shift = nq.bit_length() - 1 if nq & (nq - 1) == 0 else None  # a power of two: exact
    per_cut = nq + 1
    block_cuts = max(1, min(cuts, _SERIAL_ELEMENTS // per_cut))
    block_rows = max(1, min(channels, _SERIAL_ELEMENTS // (per_cut * cuts)))
    for r0 in range(0, channels, block_rows):
        r1 = min(channels, r0 + block_rows)
        mass_rows, nonzero_rows = cum_mass[r0:r1], cum_nonzero[r0:r1]
        for c0 in range(0, cuts, block_cuts):
            c1 = min(cuts, c0 + block_cuts)
            if edges is not None:  # ceil(edges[k] * i / edges[-1]): a float format's grid
                bounds = edges * kept[r0:r1, c0:c1].unsqueeze(-1) + (edges[-1] - 1)
                bounds //= edges[-1]
            else:
                bounds = groups * kept[r0:r1, c0:c1].unsqueeze(-1) + (nq - 1)  # ceil(k i / nq)
                if shift is not None:
                    bounds >>= shift
                else:
                    bounds //= nq
            flat_bounds = bounds.view(r1 - r0, -1)
            at = torch.gather(mass_rows, 1, flat_bounds).view(bounds.shape)
            mass = at[..., 1:] - at[..., :-1]  # [r, m, nq]
            at = torch.gather(nonzero_rows, 1, flat_bounds).view(bounds.shape)
            nonzero = (at[..., 1:] - at[..., :-1]).clamp_(min=1)
            log_ratio = torch.div(mass, nonzero, out=nonzero).clamp_(min=1).log_()
            last_log[r0:r1, c0:c1] = log_ratio[..., -1]
            group_sum[r0:r1, c0:c1] = mass.mul_(log_ratio).sum(-1)

    kept_mass = torch.gather(cum_mass, 1, kept)  # [C, M]: K = sum of hist[:i]
    last = torch.gather(h, 1, kept - 1)  # hist[i-1]
    beyond = total - kept_mass
    p_last = last + beyond
    kl_total = (torch.gather(cum_h_log_h, 1, kept - 1)
                - total * (torch.log(total) - torch.log(kept_mass.clamp(min=1e-300)))
                - group_sum - beyond * last_log + torch.xlogy(p_last, p_last))
    kl = kl_total / total
    return torch.where((p_last > 0) & (last == 0), torch.inf, kl)


@register_observer
class KLObserver(StoredDataObserver):
    """Chooses the clip threshold |x| <= t whose quantized distribution loses the least
    information (minimum KL divergence), on a ``kl_bins`` histogram of |x| per channel
    (fewer bins for channels with under 8 values per bin, see `effective_bins`).

    Per tensor, every cut point is scored (as ModelOpt's entropy calibrator does). Cuts that
    cannot win (empty last bin) are skipped. Scoring one cut of one channel costs
    ``num_quant_bins + 1`` work units (one per group of Q).

    Work budget, whatever ``bits`` and ``kl_bins``:

    - A level scores up to ``max(64, 2**23 // (C * (nq + 1)))`` cuts per channel; with more
      useful cuts than that, it scores evenly spaced ones and the next level searches every
      cut between the winner's two neighbours (again evenly spaced if still too many).
    - All levels together score at most `TOTAL_WORK_BUDGET` (2**24) units and the histogram
      holds at most `HISTOGRAM_CELLS` (2**22) channel x bin counts. When a search at full
      resolution would exceed either (e.g. channel_wise at 12-16 bits with a large
      ``kl_bins``), fewer cuts are scored per level (down to 32), and then the histogram and
      the quantization grid are both coarsened by the same power of two
      (`search_resolution`), so the thresholds are multiples of amax / (bins / f).
    - ``last_search_work`` holds the units the last search scored.
    """

    range_depends_on_bits = True

    def reset(self) -> None:
        super().reset()
        self.last_search_work = 0
        self._edges: torch.Tensor | None = None

    def _compute_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.observed_values()
        threshold = self.compute_threshold(values)
        return torch.maximum(self.min_val, -threshold), torch.minimum(self.max_val, threshold)

    def num_quant_bins(self) -> int:
        """Quantization steps covering [0, t]: all 2**b levels for one-sided data under
        Affine, half of them otherwise; a float format's intervals between its non-negative
        levels (FP8 E4M3: 126)."""
        if self.bit_type.is_float:
            return len(self._grid_edges()) - 1
        one_sided = bool((self.min_val >= 0).all() or (self.max_val <= 0).all())
        full = self.bit_type.num_levels
        return full if one_sided and not self.config.is_symmetric else full // 2

    def _grid_edges(self, nq: int | None = None) -> torch.Tensor:
        """A float format's non-negative levels in units of its smallest step, int64 [n + 1]
        (exact: the levels are multiples of it), the group edges of Q; ``nq`` < n keeps
        nq + 1 evenly spaced ones (a coarser search)."""
        grid = nonnegative_grid(self.bit_type.format).to(torch.float64)
        edges = torch.round(grid / grid[1]).long()
        if nq is not None and nq < len(edges) - 1:
            pick = torch.linspace(0, len(edges) - 1, nq + 1).round().long()
            edges = edges[pick]
        return edges

    def _best_position(self, hist, nq, cuts, positions) -> torch.Tensor:
        """Index into ``positions`` [C, M] (columns of ``cuts``) of each row's minimum KL,
        the last one on ties (the widest range), as ModelOpt does."""
        best = torch.empty(hist.shape[0], dtype=torch.long, device=hist.device)
        rows = max(1, _CHUNK_ELEMENTS // (positions.shape[1] * (nq + 1)))
        for start in range(0, hist.shape[0], rows):
            kept = cuts[start:start + rows].gather(1, positions[start:start + rows])
            kl = kl_divergence_by_threshold(hist[start:start + rows], nq, kept, self._edges)
            best[start:start + rows] = kept.shape[1] - 1 - torch.argmin(kl.flip(1), dim=1)
        self.last_search_work += positions.numel() * (nq + 1)
        return best

    def effective_bins(self, values_per_channel: int, num_quant_bins: int) -> int:
        """``kl_bins``, or fewer for channels with few values: at least 8 values per bin on
        average (and 2 bins per quantization step). A 768-value channel spread over 2048
        bins is mostly empty bins, where KL's choice is noise."""
        return min(self.config.kl_bins, max(2 * num_quant_bins, values_per_channel // 8))

    @staticmethod
    def levels_cost(num_cuts: int, cap: int) -> int:
        """Cuts per channel that the level-by-level search scores over ``num_cuts`` useful
        cuts with at most ``cap`` per level (an upper bound: rounding only narrows)."""
        total, width = 0, num_cuts
        while width > cap:
            total += cap
            width = 2 * -(-(width - 1) // (cap - 1)) + 1  # two coarse steps, both ends
        return total + width

    def search_resolution(self, channels: int, bins: int, nq: int) -> tuple[int, int, int]:
        """(bins, nq, cuts per level) to search with: full resolution and the usual cap when
        it fits the budget; else fewer cuts per level, then bins and nq divided by the
        smallest power of two that fits (nq stays >= 8, so huge layers may still exceed)."""
        factor = 1
        while True:
            b, q = bins // factor, nq // factor
            unit = channels * (q + 1)
            cap = max(64, _WORK_BUDGET // unit)
            fits = channels * b <= HISTOGRAM_CELLS
            while fits and cap > MIN_CUTS_PER_LEVEL and \
                    self.levels_cost(b - q + 1, cap) * unit > TOTAL_WORK_BUDGET:
                cap = max(MIN_CUTS_PER_LEVEL, cap // 2)
            if fits and self.levels_cost(b - q + 1, cap) * unit <= TOTAL_WORK_BUDGET \
                    or q // 2 < 8:
                return b, q, cap
            factor *= 2

    def compute_threshold(self, values: torch.Tensor) -> torch.Tensor:
        """values [C, N] -> clip threshold t [C]."""
        self.last_search_work = 0
        nq = self.num_quant_bins()
        bins = self.effective_bins(values.shape[1], nq)
        amax = torch.maximum(-self.min_val, self.max_val)  # max |x| per channel
        if nq >= bins:
            return amax
        bins, nq, cap = self.search_resolution(values.shape[0], bins, nq)
        self._edges = (self._grid_edges(nq).to(values.device) if self.bit_type.is_float
                       else None)
        # shared with `with_bit_type` copies: a bit sweep bins the data once per bin count
        hist, amax = self.derived(("abs_histogram", bins),
                                  lambda v: abs_histogram(v, bins, amax))
        cuts, counts = useful_cuts(hist, nq)
        # Level by level: score every cut when they fit the cap, else `cap` evenly spaced
        # ones, then search between the winner's neighbours.
        lo = torch.zeros_like(counts)
        hi = counts - 1
        while int((hi - lo).max()) + 1 > cap:
            steps = torch.arange(cap, device=hist.device, dtype=torch.float64)
            coarse = lo.unsqueeze(1) + (steps * (hi - lo).unsqueeze(1) / (cap - 1)).round().long()
            pick = self._best_position(hist, nq, cuts, coarse)
            lo = coarse.gather(1, (pick - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
            hi = coarse.gather(1, (pick + 1).clamp(max=cap - 1).unsqueeze(1)).squeeze(1)
        window = torch.arange(int((hi - lo).max()) + 1, device=hist.device)
        positions = torch.minimum(lo.unsqueeze(1) + window, hi.unsqueeze(1))  # padded
        best = cuts.gather(1, positions.gather(
            1, self._best_position(hist, nq, cuts, positions).unsqueeze(1))).squeeze(1)
        return amax * (best.to(amax.dtype) / bins)  # amax * best may overflow
