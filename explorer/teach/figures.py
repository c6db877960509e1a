"""Pure Plotly figures for the Teach tab (no Streamlit): error decomposition per channel, the
RMSE/scale gauge and the integer-code histogram. Payloads stay bounded: at most
`figures.MAX_CHANNEL_POINTS` channel points and `figures.MAX_HISTOGRAM_BINS` code bars."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from explorer.core.figures import (
    CLIP_COLOR,
    DEQUANT_COLOR,
    MAX_CHANNEL_POINTS,
    MAX_HISTOGRAM_BINS,
    make_block_heatmap,
)

ROUNDING_COLOR = "#2ca02c"
THEORY_COLOR = "#1f1f1f"
BAR_CHANNELS = 64  # more channels are drawn as stacked areas
GAUGE_MAX = 1.5


def _grouped(values: np.ndarray, group: int, reduce=np.mean) -> np.ndarray:
    """Reduce consecutive groups of ``group`` values [N] -> [ceil(N/group)]."""
    if group <= 1:
        return values
    missing = -values.size % group
    padded = np.pad(values, (0, missing), mode="edge")
    return reduce(padded.reshape(-1, group), axis=1)


def make_decomposition_figure(per_channel: dict, scale: torch.Tensor, title: str) -> go.Figure:
    """Stacked bars of clipping + rounding MSE per channel (their sum is the channel's total
    MSE) and a line of the theoretical rounding MSE Δ²/12 of each channel's scale.

    ``per_channel`` holds ``clipping_mse`` / ``rounding_mse`` [C]; ``scale`` is [C] or [1].
    Over `MAX_CHANNEL_POINTS` channels, consecutive channels are averaged.
    """
    clip = per_channel["clipping_mse"].double().cpu().numpy()
    rounding = per_channel["rounding_mse"].double().cpu().numpy()
    step = scale.double().reshape(-1).cpu().numpy()
    theory = np.broadcast_to(step ** 2 / 12, clip.shape)
    channels = clip.size
    group = max(1, math.ceil(channels / MAX_CHANNEL_POINTS))
    x = np.arange(0, channels, group)
    clip, rounding, theory = (_grouped(v, group) for v in (clip, rounding, theory))
    per_tensor = channels == 1
    x_labels = ["whole tensor"] if per_tensor else x
    fig = go.Figure()
    if x.size <= BAR_CHANNELS:  # few channels: stacked bars
        fig.add_trace(go.Bar(x=x_labels, y=rounding, name="rounding MSE",
                             marker_color=ROUNDING_COLOR))
        fig.add_trace(go.Bar(x=x_labels, y=clip, name="clipping MSE", marker_color=CLIP_COLOR))
    else:  # many channels: stacked areas, so the theory line stays visible on top
        for y, name, color in ((rounding, "rounding MSE", ROUNDING_COLOR),
                               (clip, "clipping MSE", CLIP_COLOR)):
            fig.add_trace(go.Scatter(x=x, y=y, name=name, stackgroup="mse", mode="lines",
                                     line={"color": color, "width": 0.5}))
    fig.add_trace(go.Scatter(x=x_labels, y=theory, name="Δ²/12 (rounding theory)",
                             mode="markers" if per_tensor else "lines",
                             line={"color": THEORY_COLOR, "dash": "dot", "width": 2},
                             marker={"color": THEORY_COLOR, "size": 14,
                                     "symbol": "line-ew-open", "line": {"width": 3}}))
    unit = f" (mean of {group} channels per point)" if group > 1 else ""
    fig.update_layout(title=title, barmode="stack",
                      xaxis_title="channel" + unit if not per_tensor else "",
                      yaxis_title="MSE", legend={"orientation": "h", "y": -0.25})
    return fig


def make_rmse_gauge(rmse_over_scale: float, rounding_only: float, title: str) -> go.Figure:
    """An indicator gauge of RMSE / scale: about 0.29 (1/√12) is rounding error only, a healthy
    range; well above it, clipping or a badly chosen range dominates."""
    value = rmse_over_scale if math.isfinite(rmse_over_scale) else 0.0
    fig = go.Figure(go.Indicator(
        mode="gauge+number",
        value=value,
        number={"valueformat": ".3f"},
        title={"text": title},
        gauge={
            "axis": {"range": [0, max(GAUGE_MAX, value * 1.1)]},
            "bar": {"color": "#1f1f1f", "thickness": 0.3},
            "steps": [
                {"range": [0, rounding_only * 1.25], "color": "#c7e9c0"},
                {"range": [rounding_only * 1.25, 0.6], "color": "#fdd49e"},
                {"range": [0.6, max(GAUGE_MAX, value * 1.1)], "color": "#fcbba1"},
            ],
            "threshold": {"line": {"color": ROUNDING_COLOR, "width": 3}, "thickness": 0.9,
                          "value": rounding_only},
        },
    ))
    fig.update_layout(height=260, margin={"t": 60, "b": 10, "l": 30, "r": 30})
    return fig


def make_code_histogram(stats: dict, title: str) -> go.Figure:
    """Bars of how often each integer code occurs (``stats`` from `analysis.code_statistics`:
    ``codes`` [2^b] and ``counts`` [2^b]). Over `MAX_HISTOGRAM_BINS` codes, consecutive codes
    are summed into one bar."""
    codes = stats["codes"].cpu().numpy()
    counts = stats["counts"].double().cpu().numpy()
    group = max(1, math.ceil(codes.size / MAX_HISTOGRAM_BINS))
    x = codes[::group]
    y = _grouped(counts, group, np.sum) if group > 1 else counts
    values = stats.get("element_values")
    hover = "code %{x}: %{y:,}<extra></extra>"
    custom = None
    if values is not None:  # float codes are grid indices: show each one's element value
        custom = values.cpu().numpy()[::group]
        hover = "code %{x} = element %{customdata:.4g}: %{y:,}<extra></extra>"
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=DEQUANT_COLOR, name="count",
                           width=group if group > 1 else None, customdata=custom,
                           hovertemplate=hover))
    label = f"integer code ({group} codes per bar)" if group > 1 else "integer code"
    if values is not None:
        label = "grid index (hover: its element value)" + (
            f", {group} codes per bar" if group > 1 else "")
    fig.update_layout(title=title, xaxis_title=label, yaxis_title="count (log scale)",
                      bargap=0.05 if group == 1 and codes.size <= 64 else 0)
    fig.update_yaxes(type="log")
    return fig


def make_clickable_heatmap(blocks: torch.Tensor, row_block: int, col_block: int,
                           shape: tuple[int, int], marked: tuple[int, int], title: str,
                           row_label: str, col_label: str) -> go.Figure:
    """`figures.make_block_heatmap` of ``blocks`` plus what makes it clickable in Streamlit.

    Plotly heatmaps emit no selection events (streamlit#8760), so each cell also gets an
    invisible marker at its centre, which sits at (first column, first row) of its block; a
    click selects the nearest marker (trace 0 after reordering) and reports that cell's
    ``x`` = first column and ``y`` = first row. ``marked`` (row, col) draws a red cross on the
    weight being followed. Keep ``blocks`` small (64 x 64 = 4096 markers at most).
    """
    heatmap = make_block_heatmap(blocks, row_block, col_block, shape, title, row_label,
                                 col_label)
    rows, cols = blocks.shape
    y, x = np.meshgrid(np.arange(rows) * row_block, np.arange(cols) * col_block,
                       indexing="ij")
    z = blocks.detach().float().cpu().numpy().reshape(-1)
    cell = heatmap.data[0]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=x.reshape(-1), y=y.reshape(-1), mode="markers", name="cells",
        marker={"size": max(4, min(14, 512 // max(rows, cols))), "opacity": 0, "color": z},
        hovertemplate=cell.hovertemplate.replace("%{z:", "%{marker.color:")))
    fig.add_trace(cell.update(hoverinfo="skip", hovertemplate=None))
    fig.add_trace(go.Scatter(x=[marked[1]], y=[marked[0]], mode="markers",
                             name="followed weight", hoverinfo="skip",
                             marker={"color": "red", "size": 11, "symbol": "x"}))
    fig.update_layout(heatmap.layout)
    fig.update_layout(showlegend=False, clickmode="event+select", dragmode=False,
                      xaxis={"showgrid": False, "zeroline": False},
                      yaxis={"showgrid": False, "zeroline": False, "autorange": "reversed"})
    return fig
