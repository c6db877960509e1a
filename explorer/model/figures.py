"""Pure Plotly figures of the Whole model tab's encoder views (MiniLM, your checkpoint).

- `make_channel_outlier_figure`: one layer's input channels sorted by absmax (bars) with their
  kurtosis (markers, log axis), the top channels named;
- `make_tracked_channels_figure`: those channels' absmax in the same layer of every block;
- `make_encoder_sensitivity_figure`: mean cosine with only one layer quantized, per layer;
- `make_encoder_comparison_figure`: mean cosine and paraphrase retrieval per config.

Every figure is bounded: at most one bar per channel (<= a few thousand) or per layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import torch

__all__ = [
    "block_index",
    "make_channel_outlier_figure",
    "make_encoder_comparison_figure",
    "make_encoder_sensitivity_figure",
    "make_tracked_channels_figure",
    "same_layer_in_every_block",
    "top_channels",
]

TOP_CHANNELS = 8
_BLOCK = re.compile(r"\.(\d+)\.")


def top_channels(absmax: torch.Tensor, k: int = TOP_CHANNELS) -> list[int]:
    """The indices of the ``k`` channels with the largest absmax (largest first)."""
    return [int(i) for i in absmax.argsort(descending=True)[:k]]


def block_index(name: str) -> int | None:
    """The block number in a dotted layer name (``encoder.layer.3.output.dense`` -> 3)."""
    match = _BLOCK.search(name)
    return None if match is None else int(match.group(1))


def same_layer_in_every_block(name: str, names: Sequence[str]) -> list[str]:
    """``name``'s counterpart in every block, in block order (``encoder.layer.{i}.output.dense``
    for i = 0..5); just ``[name]`` when it is not inside a numbered block."""
    match = _BLOCK.search(name)
    if match is None:
        return [name]
    pattern = re.compile(re.escape(name[:match.start()]) + r"\.(\d+)\."
                         + re.escape(name[match.end():]) + "$")
    found = [(int(m.group(1)), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(found)]


def make_channel_outlier_figure(layer: str, absmax: torch.Tensor, kurtosis: torch.Tensor,
                                tokens: int, k: int = TOP_CHANNELS) -> go.Figure:
    """Input channels of ``layer`` sorted by absmax [in] (bars, left axis), their kurtosis [in]
    (markers, right log axis), the top ``k`` named on the plot and the median as a line."""
    order = absmax.argsort(descending=True)
    values, kurt = absmax[order].tolist(), kurtosis[order].tolist()
    channels = order.tolist()
    median = float(absmax.median())
    ranks = list(range(len(values)))
    fig = go.Figure()
    fig.add_bar(x=ranks, y=values, name="absmax", marker_color="#1f77b4",
                customdata=channels,
                hovertemplate="channel %{customdata}: |x|max %{y:.2f}<extra></extra>")
    fig.add_scatter(x=ranks, y=kurt, name="kurtosis", mode="markers", yaxis="y2",
                    marker={"size": 4, "color": "#d62728"}, customdata=channels,
                    hovertemplate="channel %{customdata}: kurtosis %{y:.1f}<extra></extra>")
    fig.add_hline(y=median, line_dash="dash", line_color="rgba(60, 60, 60, 0.8)")
    for rank in range(min(k, len(values))):
        fig.add_annotation(x=rank, y=values[rank], text=f"ch {channels[rank]}",
                           showarrow=True, arrowhead=1, ax=30 + 4 * rank, ay=-20 - 12 * rank,
                           font={"size": 10})
    ratio = values[0] / median if median > 0 else float("inf")
    fig.update_layout(
        title=f"{layer}: input channels by absmax (top {ratio:.0f}x the median "
              f"{median:.2f}; {tokens} tokens)",
        xaxis_title="channel rank (largest absmax first)", yaxis_title="absmax |x|",
        yaxis2={"title": "kurtosis (log)", "overlaying": "y", "side": "right", "type": "log"},
        legend={"orientation": "h", "y": -0.25}, margin={"t": 50}, bargap=0)
    return fig


def make_tracked_channels_figure(absmax_by_layer: Mapping[str, torch.Tensor],
                                 channels: Sequence[int]) -> go.Figure:
    """One line per tracked channel: its absmax in each layer of ``absmax_by_layer`` (same
    kind of layer in every block, block order), and the median channel's as a dashed line."""
    labels = list(absmax_by_layer)
    fig = go.Figure()
    for channel in channels:
        fig.add_scatter(x=labels, y=[float(absmax_by_layer[n][channel]) for n in labels],
                        mode="lines+markers", name=f"ch {channel}",
                        hovertemplate=f"ch {channel}" + ": %{y:.2f}<extra>%{x}</extra>")
    fig.add_scatter(x=labels, y=[float(absmax_by_layer[n].median()) for n in labels],
                    mode="lines", name="median channel", line={"dash": "dash", "color": "#555"})
    fig.update_layout(title="The same channels in every block (absmax)",
                      xaxis_title="layer", yaxis_title="absmax |x| (log)", yaxis_type="log",
                      legend={"orientation": "h", "y": -0.35}, margin={"t": 50})
    return fig


def make_encoder_sensitivity_figure(sensitivity: Mapping[str, tuple[float, float]],
                                    all_layers_cosine: float) -> go.Figure:
    """Bars: mean cosine (quantized vs fp32 embeddings) with only that layer quantized; a
    dotted line: every layer quantized."""
    names = list(sensitivity)
    values = [sensitivity[n][0] for n in names]
    retrieval = [100 * sensitivity[n][1] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, name="only this layer quantized",
                           customdata=retrieval,
                           hovertemplate="only %{x}: cosine %{y:.4f}, retrieval "
                                         "%{customdata:.1f} %<extra></extra>"))
    fig.add_hline(y=all_layers_cosine, line_dash="dot", line_color="#d62728")
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                             name=f"all layers quantized: {all_layers_cosine:.4f}",
                             line={"dash": "dot", "color": "#d62728"}))
    low = min([*values, all_layers_cosine])
    fig.update_layout(title="Sensitivity: mean cosine with only one layer quantized",
                      xaxis_title="quantized layer", yaxis_title="mean cosine vs fp32",
                      yaxis_range=[max(-1.0, low - 0.1 * (1 - low) - 1e-4), 1.0005],
                      xaxis_tickangle=-60, legend={"orientation": "h", "y": -0.6},
                      margin={"t": 50, "b": 160}, height=520)
    return fig


def make_encoder_comparison_figure(rows: Sequence[tuple[str, float, float, float]]
                                   ) -> go.Figure:
    """Per config ``(label, mean cosine, retrieval, fp32 retrieval)``: the mean cosine (left
    axis) and the paraphrase retrieval accuracy in % (right axis) side by side."""
    labels = [r[0] for r in rows]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[r[1] for r in rows], name="mean cosine", offsetgroup=0,
                hovertemplate="%{x}: cosine %{y:.4f}<extra></extra>")
    fig.add_bar(x=labels, y=[100 * r[2] for r in rows], name="retrieval (%)", yaxis="y2",
                offsetgroup=1, hovertemplate="%{x}: retrieval %{y:.1f} %<extra></extra>")
    fig.update_layout(title="Whole-model task metrics per config", xaxis_title="config",
                      yaxis={"title": "mean cosine vs fp32", "range": [0, 1.0]},
                      yaxis2={"title": "paraphrase retrieval (%)", "overlaying": "y",
                              "side": "right", "range": [0, 100]},
                      barmode="group", legend={"orientation": "h", "y": -0.35},
                      margin={"t": 50})
    return fig
