"""The compare view's clip-threshold view of one tensor: curves, marks and a histogram.

No Streamlit here. `clip_view` sweeps the clip threshold t from ~0 to max|x| for each
(bits, signed, method) among the configs (`quantlib.analysis.clip_threshold_curve`: one
histogram summary of the tensor, the MSE split into clipping and rounding error), marks each
config's chosen t at its own exact MSE (`quantlib.analysis.error_decomposition`) and bins the
fp32 values for a histogram (at most 256 bins).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from explorer.compare.runs import TensorRun
from quantlib.analysis import clip_threshold_curve, error_decomposition
from quantlib.profiler import as_channels

CURVE_POINTS = 200
HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class Curve:
    """MSE of the values against the clip threshold t for one (bits, signed, method); float64
    [P] each, ``clipping + rounding == total``."""

    label: str
    thresholds: torch.Tensor
    total: torch.Tensor
    clipping: torch.Tensor
    rounding: torch.Tensor


@dataclass(frozen=True)
class ClipMark:
    """One config's chosen clip on the curve of ``curve`` (an index into the view's curves).

    ``threshold`` is its t (the observer's range as a symmetric threshold), ``clip_lo`` /
    ``clip_hi`` its representable range, and the MSEs are its own on these values (exact, with
    its own qparams). ``on_curve`` is False where the curve's one-threshold family cannot hold
    the config's range (channel_wise over a whole tensor, or an asymmetric range).
    """

    name: str
    curve: int
    threshold: float
    clip_lo: float
    clip_hi: float
    mse: float
    clipping_mse: float
    rounding_mse: float
    on_curve: bool
    note: str


@dataclass(frozen=True)
class ClipView:
    """Curves, marks and a fp32 histogram (``edges`` [B+1], ``counts`` [B]) of one tensor."""

    scope: str
    curves: tuple[Curve, ...]
    marks: tuple[ClipMark, ...]
    edges: torch.Tensor
    counts: torch.Tensor
    skipped: tuple[str, ...] = ()  # block_wise configs: no single clip threshold


def clip_view(values: torch.Tensor, runs: Mapping[str, TensorRun], axis: int,
              channel: int | None = None, scope: str = "") -> ClipView:
    """The clip-threshold view of ``values`` (the weight [out, in] with ``axis`` 0, or the
    calibration outputs [N, out] with ``axis`` -1), whole or one ``channel``.

    Whole tensor: a layer_wise config is marked at its own threshold; a channel_wise one at the
    median of its per-channel thresholds (and ranges), with the MSE of its per-channel ranges.
    One channel: every config at its range for that channel (a layer_wise range is the same
    for every channel), on that channel's values.
    """
    x = values.detach().float()
    if channel is not None:
        x = as_channels(x, axis)[channel]
    curves: list[Curve] = []
    groups: dict[tuple, int] = {}
    marks = []
    skipped = []
    for name, run in runs.items():
        if run.config.is_block_wise:  # each block's scale comes from its own amax
            skipped.append(name)
            continue
        bt, symmetric = run.config.bit_type, run.config.is_symmetric
        key = (bt.bits, bt.signed, symmetric)
        if key not in groups:
            groups[key] = len(curves)
            data = clip_threshold_curve(x, bt, symmetric, CURVE_POINTS)
            curves.append(Curve(f"{bt.name} {run.config.quantization_method}",
                                data["thresholds"], data["total_mse"], data["clipping_mse"],
                                data["rounding_mse"]))
        marks.append(_mark(name, run, x, values, axis, channel, groups[key]))
    counts, edges = _histogram(x)
    return ClipView(scope, tuple(curves), tuple(marks), edges, counts, tuple(skipped))


def _mark(name, run: TensorRun, x, values, axis, channel, curve) -> ClipMark:
    per_channel = run.scale.numel() > 1
    bt = run.config.bit_type
    if channel is not None or not per_channel:
        i = 0 if not per_channel else channel
        scale, zero = run.scale[i:i + 1], run.zero_point[i:i + 1]
        d = error_decomposition(x, scale, zero, bt)
        note = "its range" if channel is None else f"its range for channel {channel}"
        return ClipMark(name, curve, float(run.threshold[i]), float(run.clip_lo[i]),
                        float(run.clip_hi[i]), d["total_mse"], d["clipping_mse"],
                        d["rounding_mse"], run.config.is_symmetric, note)
    d = error_decomposition(values.detach().float(), run.scale, run.zero_point, bt, axis)
    return ClipMark(name, curve, _median(run.threshold), _median(run.clip_lo),
                    _median(run.clip_hi), d["total_mse"], d["clipping_mse"], d["rounding_mse"],
                    False, "median of its per-channel ranges; MSE with its per-channel ranges")


def _median(t: torch.Tensor) -> float:
    return float(statistics.median(t.double().tolist()))


def _histogram(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.reshape(-1).double()
    lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(flat, HISTOGRAM_BINS, lo, hi).to(torch.int64)
    return counts, torch.linspace(lo, hi, HISTOGRAM_BINS + 1, dtype=torch.float64)
