"""Per-channel figures (pure Plotly): each channel's QSNR and clip range, by index or sorted.

A layer has up to 4096 channels; at most ``MAX_CHANNEL_POINTS`` points are drawn per trace.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from explorer.core.figures import (
    ALL_LOSSLESS_DISPLAY_DB,
    CLIP_COLOR,
    FP32_COLOR,
    INF_QSNR_MARGIN_DB,
    MAX_CHANNEL_POINTS,
    as_numpy,
    block_reduce_1d,
)

WORST_CHANNELS = 5  # labelled by name in the sorted view
CHANNEL_ORDERS = ("index", "qsnr")


def make_per_channel_figure(
    per_channel_qsnr: torch.Tensor,
    clip_lo: torch.Tensor | None,
    clip_hi: torch.Tensor | None,
    title: str,
    order: str = "index",
) -> go.Figure:
    """Per-channel QSNR [C] (dB, top row) and clip range ``clip_lo``/``clip_hi`` [C] (bottom row).

    +inf QSNR (a lossless channel) is drawn at a display cap above the finite values and said so
    in the hover. ``order="index"``: channels in index order; over ``MAX_CHANNEL_POINTS``
    channels, consecutive channels are grouped in blocks and each block shows its min/max
    (worst/best QSNR, widest clip range). ``order="qsnr"``: channels sorted by QSNR, worst
    first (see `_sorted_per_channel`).
    """
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"unknown order {order!r}; valid choices: {CHANNEL_ORDERS}")
    qsnr = as_numpy(per_channel_qsnr, np.float64).ravel()
    if qsnr.size == 0:
        raise ValueError("per_channel_qsnr must have at least one channel")
    if (clip_lo is None) != (clip_hi is None):
        raise ValueError("pass both clip_lo and clip_hi, or neither")
    has_clip = clip_lo is not None
    if has_clip:
        clip_lo = as_numpy(clip_lo, np.float64).ravel()
        clip_hi = as_numpy(clip_hi, np.float64).ravel()
        if clip_lo.shape != qsnr.shape or clip_hi.shape != qsnr.shape:
            raise ValueError(
                f"clip_lo {clip_lo.shape} and clip_hi {clip_hi.shape} must match "
                f"per_channel_qsnr {qsnr.shape}"
            )
    finite = qsnr[np.isfinite(qsnr)]
    cap = finite.max() + INF_QSNR_MARGIN_DB if finite.size else ALL_LOSSLESS_DISPLAY_DB
    floor = min(finite.min(), 0.0) - INF_QSNR_MARGIN_DB if finite.size else 0.0
    shown = np.clip(qsnr, floor, cap)
    if order == "qsnr":
        return _sorted_per_channel(qsnr, shown, cap, clip_lo, clip_hi, title)
    block = math.ceil(qsnr.size / MAX_CHANNEL_POINTS)
    starts = np.arange(0, qsnr.size, block)
    lossless = block_reduce_1d(np.isposinf(qsnr).astype(np.float64), block, np.fmax) > 0
    where = "channel %{x}" if block == 1 else f"channels %{{x}}…+{block - 1}"
    rows = 2 if has_clip else 1
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("QSNR per channel", "clip range per channel")[:rows],
    )
    if block == 1:
        fig.add_trace(_line(starts, shown, "QSNR", where, " dB"), row=1, col=1)
    else:
        best = block_reduce_1d(shown, block, np.fmax)
        worst = block_reduce_1d(shown, block, np.fmin)
        fig.add_trace(_line(starts, best, "best QSNR", where, " dB", line_dash="dot"), 1, 1)
        fig.add_trace(_line(starts, worst, "worst QSNR", where, " dB", fill="tonexty"), 1, 1)
    if lossless.any():
        fig.add_trace(
            go.Scatter(
                x=starts[lossless],
                y=np.full(int(lossless.sum()), cap),
                mode="markers",
                name=f"lossless (+inf dB, drawn at {cap:.1f})",
                marker={"symbol": "triangle-up", "size": 8, "color": "#2ca02c"},
                hovertemplate=f"{where}<br>QSNR +inf dB (lossless), drawn at {cap:.1f} dB"
                "<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(title_text="QSNR (dB)", row=1, col=1)
    if has_clip:
        high = block_reduce_1d(clip_hi, block, np.fmax)
        low = block_reduce_1d(clip_lo, block, np.fmin)
        fig.add_trace(_line(starts, high, "clip hi", where, line_color=CLIP_COLOR), 2, 1)
        fig.add_trace(
            _line(starts, low, "clip lo", where, line_color=CLIP_COLOR, fill="tonexty"),
            2,
            1,
        )
        fig.update_yaxes(title_text="clip value", row=2, col=1)
    fig.update_xaxes(title_text="channel", row=rows, col=1)
    grouping = f" ({qsnr.size} channels, min/max per block of {block})" if block > 1 else ""
    fig.update_layout(title=title + grouping, hovermode="closest", height=300 + 200 * rows)
    return fig


def sorted_channel_ranks(qsnr: np.ndarray, points: int = MAX_CHANNEL_POINTS
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``(order, ranks)``: ``order`` [C] the channels sorted by QSNR, worst first (stable);
    ``ranks`` the positions in ``order`` to draw: all of them, or over ``points`` channels
    evenly spaced ones that always include the worst and the best. ``order[ranks]`` are the
    drawn channels."""
    order = np.argsort(qsnr, kind="stable")
    ranks = np.arange(qsnr.size)
    if qsnr.size > points:
        ranks = np.unique(np.round(np.linspace(0, qsnr.size - 1, points)).astype(int))
    return order, ranks


def sorted_channel_curve(qsnr: np.ndarray, points: int = MAX_CHANNEL_POINTS
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel QSNR [C] sorted from worst to best, as ``(share, qsnr, channel)``:
    ``share`` is the position in % of the channels (0 = worst, 100 = best) and ``channel``
    the original index of each point (`sorted_channel_ranks` picks them)."""
    order, ranks = sorted_channel_ranks(qsnr, points)
    channels = order[ranks]
    return 100.0 * ranks / max(qsnr.size - 1, 1), qsnr[channels], channels


def _sorted_per_channel(qsnr, shown, cap, clip_lo, clip_hi, title) -> go.Figure:
    """Channels sorted by QSNR, worst first: x is the rank, the hover names the channel, the
    ``WORST_CHANNELS`` worst are labelled, and the clip range row follows the same order (so
    wide-range channels behind low QSNR line up). Over ``MAX_CHANNEL_POINTS`` channels, evenly
    spaced ranks are drawn, always including the first (worst) and last; the sorted curve is
    monotone, so nothing between them is hidden."""
    ranked, ranks = sorted_channel_ranks(shown)  # channels worst first, ranks drawn
    picked = ranked[ranks]
    rows = 1 if clip_lo is None else 2
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("QSNR per channel, worst first",
                                        "clip range of the same channels")[:rows])
    where = "rank %{x}: channel %{customdata}"
    fig.add_trace(_line(ranks, shown[picked], "QSNR", where, " dB", customdata=picked), 1, 1)
    worst = ranked[:WORST_CHANNELS]
    fig.add_trace(go.Scatter(
        x=np.arange(worst.size), y=shown[worst], customdata=worst, mode="markers+text",
        name=f"worst {worst.size}", text=[f"ch {c}" for c in worst.tolist()],
        textposition="middle right", marker={"color": CLIP_COLOR, "size": 7},
        hovertemplate="channel %{customdata}<br>QSNR %{y:.4g} dB<extra></extra>"), 1, 1)
    lossless = np.isposinf(qsnr[picked])
    if lossless.any():
        fig.add_trace(go.Scatter(
            x=ranks[lossless], y=np.full(int(lossless.sum()), cap), mode="markers",
            name=f"lossless (+inf dB, drawn at {cap:.1f})", customdata=picked[lossless],
            marker={"symbol": "triangle-up", "size": 8, "color": "#2ca02c"},
            hovertemplate=f"channel %{{customdata}}<br>QSNR +inf dB (lossless), drawn at "
                          f"{cap:.1f} dB<extra></extra>"), 1, 1)
    fig.update_yaxes(title_text="QSNR (dB)", row=1, col=1)
    if clip_lo is not None:
        fig.add_trace(_line(ranks, clip_hi[picked], "clip hi", where, line_color=CLIP_COLOR,
                            customdata=picked), 2, 1)
        fig.add_trace(_line(ranks, clip_lo[picked], "clip lo", where, line_color=CLIP_COLOR,
                            fill="tonexty", customdata=picked), 2, 1)
        fig.update_yaxes(title_text="clip value", row=2, col=1)
    fig.update_xaxes(title_text="channel rank (worst QSNR first)", row=rows, col=1)
    shown_note = f", {ranks.size} of {qsnr.size} ranks drawn" if ranks.size < qsnr.size else ""
    fig.update_layout(title=f"{title} ({qsnr.size} channels sorted by QSNR{shown_note})",
                      hovermode="closest", height=300 + 200 * rows)
    return fig


def _line(x, y, name: str, where: str, unit: str = "", **style) -> go.Scatter:
    """A per-channel line trace whose hover reads "<where><br><name>: <y><unit>"."""
    style.setdefault("line_color", FP32_COLOR)
    hover = f"{where}<br>{name}: %{{y:.4g}}{unit}<extra></extra>"
    return go.Scatter(x=x, y=y, name=name, mode="lines", hovertemplate=hover, **style)
