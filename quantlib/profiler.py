"""`QuantProfiler`: how far a quantized tensor is from its fp32 reference.

Sums are float64 and accumulate over every update (every quantized forward), so QSNR is
``10 * log10(sum x^2 / sum (x - x_hat)^2)`` over all data seen; lossless gives +inf.
"""

from __future__ import annotations

import math

import torch

from quantlib.quantizers.format_ops import SCALE_BITS

MAX_HISTOGRAM_BINS = 512
# "Clipped" means beyond the representable range by over half a step (with float slack), so
# values at the range's edge, which round onto the last code, do not count.
HALF_STEP = 0.5 * (1 + 1e-5)
# Float32 sums of squares stay exact to rounding while the largest |value| lies in
# [2**-SAFE_EXPONENT, 2**SAFE_EXPONENT]; beyond, the tensor is scaled by a power of two first
# (at most 2**MAX_SHIFT either way, so the factor itself is a normal float32).
SAFE_EXPONENT = 40
MAX_SHIFT = 126
# A channel's float32 row norm below this (its sum of squares below 2**-100) is recomputed in
# float64: denormal squares lose digits and underflowed ones vanish.
TINY_NORM = 2.0**-50


def qsnr_db(signal: float, noise: float) -> float:
    """10*log10(signal / noise); +inf when lossless, -inf when the signal is all zero."""
    if noise <= 0.0:
        return math.inf
    if signal <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def beyond_half_step(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """The clipped mask: ``x`` over half a step (``scale``) outside [lo, hi] (broadcasting)."""
    half = scale * HALF_STEP
    return (x < lo - half) | (x > hi + half)


def as_channels(x: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """Any tensor -> [C, N] with channels from ``channel_axis`` (a 0-d tensor is [1, 1])."""
    if x.dim() == 0:
        return x.reshape(1, 1)
    axis = channel_axis % x.dim()
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


class QuantProfiler:
    """Error statistics, a shared-bin histogram, stage times and memory of one tensor.

    ``channel_axis`` picks the channels for per-channel QSNR (0 for a weight [out, in],
    -1 for activations [..., features]).
    """

    def __init__(self, name: str, channel_axis: int = 0, num_bins: int = 256) -> None:
        if not 2 <= num_bins <= MAX_HISTOGRAM_BINS:
            raise ValueError(f"num_bins must be from 2 to {MAX_HISTOGRAM_BINS}, got {num_bins}")
        self.name = name
        self.channel_axis = channel_axis
        self.num_bins = num_bins
        self.time_ms: dict[str, float] = {}
        self.memory: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Drop the accumulated statistics and histogram (times and memory stay)."""
        self._sums = {k: 0.0 for k in ("signal", "noise", "abs_error", "cross", "quant_energy",
                                        "ref_energy")}
        self._count = 0
        self._clipped = 0
        self._max_abs_error = 0.0
        self._channel_signal: torch.Tensor | None = None
        self._channel_noise: torch.Tensor | None = None
        self._edges: torch.Tensor | None = None
        self._fp32_counts: torch.Tensor | None = None
        self._quant_counts: torch.Tensor | None = None
        self._clip_range = (math.nan, math.nan)

    def record_time(self, stage: str, ms: float) -> None:
        """Add ``ms`` to a stage's running total."""
        self.time_ms[stage] = self.time_ms.get(stage, 0.0) + ms

    def update(self, reference: torch.Tensor, quantized: torch.Tensor,
               clip_lo: torch.Tensor, clip_hi: torch.Tensor,
               scale: torch.Tensor | None = None, *,
               clipped: torch.Tensor | None = None) -> None:
        """Compare one quantized tensor with its fp32 reference (same shape).

        ``clip_lo``/``clip_hi`` ([1], or [C] along ``channel_axis``) are the quantizer's
        representable range. A value counts as clipped when it lies beyond that range by more
        than half a step (``scale / 2``, same shape): its error came from clamping, not rounding.
        ``clipped`` (bool, the reference's shape) replaces that test where the range varies
        per block (`Quantizer.clipped_mask`); ``clip_lo``/``clip_hi`` then only mark the
        histogram's range.
        """
        if reference.shape != quantized.shape:
            raise ValueError(f"{self.name}: reference {tuple(reference.shape)} and quantized "
                             f"{tuple(quantized.shape)} differ in shape")
        if reference.numel() == 0:
            return
        ref = as_channels(reference.detach().float(), self.channel_axis)  # [C, N]
        deq = as_channels(quantized.detach().float(), self.channel_axis)
        ref_lo, ref_hi = torch.aminmax(ref)
        deq_lo, deq_hi = torch.aminmax(deq)
        extremes = torch.stack([ref_lo, ref_hi, deq_lo, deq_hi]).tolist()
        if not all(math.isfinite(v) for v in extremes):
            what = "fp32 reference" if not all(map(math.isfinite, extremes[:2])) else \
                "quantized tensor"
            raise ValueError(f"{self.name}: the {what} contains NaN/Inf values (float32 "
                             "overflow?); the profiler needs finite values")
        # Sums of squares overflow float32 past |x| ~ 1.8e19 and underflow below ~1e-19, so
        # a tensor whose largest |value| leaves [2**-40, 2**40] is scaled by a power of two
        # (exact) to bring it near 1, and the float64 sums undo it. Sums run in float32
        # (cascade summation), then accumulate in float64: no float64 copy of the tensor.
        amax = max(abs(v) for v in extremes)
        exponent = math.frexp(amax)[1]  # amax in [2**(exponent-1), 2**exponent)
        factor = 1.0
        if amax > 0.0 and abs(exponent) > SAFE_EXPONENT:
            factor = 2.0 ** max(-MAX_SHIFT, min(MAX_SHIFT, -exponent))
        ref_s, deq_s = (ref, deq) if factor == 1.0 else (ref * factor, deq * factor)
        err = deq_s - ref_s
        ref_flat, deq_flat, err_flat = ref_s.reshape(-1), deq_s.reshape(-1), err.reshape(-1)
        stats = torch.stack([torch.dot(ref_flat, ref_flat), torch.dot(ref_flat, deq_flat),
                             torch.dot(deq_flat, deq_flat),
                             torch.linalg.vector_norm(err_flat, ord=1),
                             torch.linalg.vector_norm(err_flat, ord=math.inf)]).double().tolist()
        unscale2 = 1.0 / (factor * factor)
        channel_signal, channel_noise = self._channel_sums(ref, deq, ref_s, err, unscale2,
                                                           stats[4] > 0.0)
        sums = (float(channel_signal.sum()), float(channel_noise.sum()), stats[3] / factor,
                stats[1] * unscale2, stats[2] * unscale2, stats[0] * unscale2)
        for key, value in zip(self._sums, sums):
            self._sums[key] += value
        self._max_abs_error = max(self._max_abs_error, stats[4] / factor)
        lo, hi = clip_lo.float().reshape(-1, 1), clip_hi.float().reshape(-1, 1)
        step = torch.zeros_like(lo) if scale is None else scale.float().reshape(-1, 1)
        if lo.shape[0] not in (1, ref.shape[0]):  # per-tensor range but other channel axis
            lo, hi, step = lo.min().reshape(1, 1), hi.max().reshape(1, 1), step.max().reshape(1, 1)
        if clipped is None:
            clipped = beyond_half_step(ref, lo, hi, step)
        self._clipped += int(torch.count_nonzero(clipped))
        self._count += ref.numel()
        if self._channel_signal is None or self._channel_signal.shape != channel_signal.shape:
            self._channel_signal, self._channel_noise = channel_signal, channel_noise
        else:
            self._channel_signal = self._channel_signal + channel_signal
            self._channel_noise = self._channel_noise + channel_noise
        if factor > 1.0:  # tiny values: the histogram bins them unscaled (its float64 path)
            ref_s, deq_s, factor = ref, deq, 1.0
        self._update_histogram(ref_s, deq_s, factor, extremes, float(lo.min()), float(hi.max()))

    @staticmethod
    def _channel_sums(ref: torch.Tensor, deq: torch.Tensor, ref_s: torch.Tensor,
                      err: torch.Tensor, unscale2: float,
                      any_error: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel float64 (sum x^2, sum (x - x_hat)^2), each [C], from the float32 row
        norms of the scaled ``ref_s``/``err`` [C, N]. A channel whose sum is near float32's
        underflow (tiny values, or a true zero) is recomputed in float64 from ``ref``/``deq``,
        so a lossless or all-zero channel is exactly 0 and a tiny one is not."""
        signal_norm = torch.linalg.vector_norm(ref_s, dim=1)
        noise_norm = torch.linalg.vector_norm(err, dim=1)
        channel_signal = signal_norm.double().square() * unscale2
        channel_noise = noise_norm.double().square() * unscale2
        small = signal_norm < TINY_NORM
        if any_error:  # else every error is exactly 0 and so is every noise sum
            small |= noise_norm < TINY_NORM
        rows = torch.nonzero(small).reshape(-1)
        if rows.numel():
            exact_ref = ref.index_select(0, rows).double()
            exact_err = deq.index_select(0, rows).double() - exact_ref
            channel_signal[rows] = exact_ref.square().sum(dim=1)
            channel_noise[rows] = exact_err.square().sum(dim=1)
        return channel_signal, channel_noise

    def _update_histogram(self, ref: torch.Tensor, deq: torch.Tensor, factor: float,
                          extremes: list[float], lo: float, hi: float) -> None:
        """Add ``ref``/``deq`` (both multiplied by ``factor``; their unscaled min/max in
        ``extremes``) to the shared-bin counts."""
        ref_min, ref_max = extremes[0], extremes[1]
        if self._edges is None:
            low, high = min(ref_min, lo), max(ref_max, hi)
            if high <= low:  # a constant tensor; the pad must survive rounding at 1e17+
                pad = max(0.5, abs(high) * 2.0**-20)
                low, high = low - pad, high + pad
            self._edges = torch.linspace(low, high, self.num_bins + 1, dtype=torch.float64)
            self._fp32_counts = torch.zeros(self.num_bins, dtype=torch.int64)
            self._quant_counts = torch.zeros(self.num_bins, dtype=torch.int64)
        self._clip_range = (lo, hi)
        low = float(self._edges[0]) * factor
        per_unit = self.num_bins / ((float(self._edges[-1]) - float(self._edges[0])) * factor)
        # float32 index math (overflow gives +-inf, which the clamp maps to the end bins),
        # float64 only when the bin width itself is below float32's range (denormal data)
        wide = per_unit > 2.0**100
        high = low + self.num_bins / per_unit
        for values, counts, (v_min, v_max) in ((ref, self._fp32_counts, extremes[:2]),
                                               (deq, self._quant_counts, extremes[2:])):
            if values.numel() < 2**24 and not wide:  # torch.histc's float counts are exact
                binned = torch.histc(values, self.num_bins, low, high).to(torch.int64)
                # histc drops values outside the edges; count them only when there are any
                if v_min * factor < low:
                    binned[0] += torch.count_nonzero(values < low)
                if v_max * factor > high:
                    binned[-1] += torch.count_nonzero(values > high)
                counts += binned.cpu()
                continue
            values = values.double() if wide else values
            idx = ((values - low) * per_unit).clamp_(0, self.num_bins - 1).long()
            counts += torch.bincount(idx.reshape(-1), minlength=self.num_bins).cpu()

    def get_results(self) -> dict:
        """``{'statistics', 'histogram', 'time', 'memory'}``; statistics/histogram are None
        until the first update."""
        return {
            "statistics": self._statistics() if self._count else None,
            "histogram": None if self._edges is None else {
                "edges": self._edges.clone(),            # float64 [B+1]
                "fp32_counts": self._fp32_counts.clone(),  # int64 [B]
                "dequant_counts": self._quant_counts.clone(),  # int64 [B]
                "clip_range": self._clip_range,
            },
            "time": dict(self.time_ms),
            "memory": dict(self.memory),
        }

    def _statistics(self) -> dict:
        s = self._sums
        n = self._count
        # float32 dots (scaled near 1): the three energies come from the same sums, so a
        # lossless tensor gives exactly 1. Undefined (a zero vector) -> 1 when both are zero,
        # 0 when only one is.
        norm = math.sqrt(s["ref_energy"] * s["quant_energy"])  # float64: no over/underflow
        if norm > 0:
            cosine = max(-1.0, min(1.0, s["cross"] / norm))
        else:
            cosine = 1.0 if s["ref_energy"] == s["quant_energy"] else 0.0
        per_channel = [qsnr_db(a, b) for a, b in zip(self._channel_signal.tolist(),
                                                    self._channel_noise.tolist())]
        return {
            "qsnr": qsnr_db(s["signal"], s["noise"]),
            "mse": s["noise"] / n,
            "mae": s["abs_error"] / n,
            "max_abs_error": self._max_abs_error,
            "cosine_similarity": cosine,
            "clip_fraction": self._clipped / n,
            "num_elements": n,
            "per_channel_qsnr": torch.tensor(per_channel, dtype=torch.float64),  # [C]
        }


def memory_report(tensor: torch.Tensor, config, quantizer) -> dict:
    """Storage of ``tensor`` (for activations: the last quantized forward's) under
    ``config`` (a `QuantConfig`) and ``quantizer`` (its `Quantizer`), in fp32 and quantized,
    with ``bits_per_element`` = (element bits + scale bits) / element:

    - elements: ``bits`` each, packed;
    - scales: one per tensor, channel or block, 32 bits (fp32) for integer and FP8 formats,
      8 for MX (E8M0) and NVFP4 (E4M3), plus NVFP4's one 32-bit tensor scale;
    - zero points: Affine integers only, ``bits`` wide each (a zero point lies in
      [qmin, qmax]); Uniform's is implied (0, or 2^(b-1) unsigned), so not stored.

    MXFP4: 4 + 8/32 = 4.25; NVFP4: 4 + 8/16 + 32/numel; INT4 g128 Uniform: 4 + 32/128 = 4.25,
    Affine: 4 + 36/128.
    """
    bit_type = config.bit_type
    spec = bit_type.format
    count = tensor.numel()
    scales = count // quantizer.block_size if quantizer.block_size else quantizer.scale.numel()
    zero_bits = bit_type.bits if spec.family == "int" and not config.is_symmetric else 0
    scale_bits = scales * (SCALE_BITS[spec.scale] + zero_bits)
    scale_bits += 32 if spec.family == "nvfp4" else 0
    fp32 = count * 4
    packed = math.ceil(count * bit_type.bits / 8)
    qparams = math.ceil(scale_bits / 8)
    return {"fp32_bytes": fp32, "quantized_bytes": packed, "qparam_bytes": qparams,
            "compression_ratio": fp32 / max(packed + qparams, 1),
            "bits_per_element": (count * bit_type.bits + scale_bits) / max(count, 1)}
