"""Pure Plotly figures of the transform panel."""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

MAX_POINTS = 2048  # channels drawn per trace; wider layers are block-maxed down to this


def _thin(values: torch.Tensor) -> tuple[list[int], list[float]]:
    """(channel index, value) with at most MAX_POINTS points (max over blocks of channels)."""
    n = values.numel()
    step = max(1, -(-n // MAX_POINTS))
    if step == 1:
        return list(range(n)), values.tolist()
    pad = (-n) % step
    padded = torch.cat([values, values.new_zeros(pad)]) if pad else values
    return list(range(0, n, step)), padded.reshape(-1, step).amax(dim=1).tolist()


def make_migration_figure(migration, title: str) -> go.Figure:
    """Two rows over the input channels j: max|x_j| and max_i |W_ij|, before (grey) and after
    (blue) the transform; the activation row on a log axis (outliers span decades)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Input activation: max |x_j| per channel",
                                        "Weight: max_i |W_ij| per input channel"))
    for row, (before, after) in enumerate(((migration.act_before, migration.act_after),
                                           (migration.weight_before, migration.weight_after)),
                                          start=1):
        for values, name, color in ((before, "before", "#9e9e9e"), (after, "after", "#1f77b4")):
            x, y = _thin(values.float())
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, legendgroup=name,
                                     showlegend=row == 1, line={"color": color, "width": 1}),
                          row=row, col=1)
    fig.update_yaxes(type="log", dtick=1, row=1, col=1)  # powers of ten only: no clutter
    fig.update_xaxes(title_text="input channel j", row=2, col=1)
    fig.update_layout(title=title, height=420, margin={"t": 70, "b": 40, "l": 50, "r": 10},
                      legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})
    return fig


def make_alpha_curve_figure(alphas: torch.Tensor, qsnr: torch.Tensor,
                            chosen: float | None, title: str) -> go.Figure:
    """Output QSNR (dB) vs SmoothQuant alpha; the best alpha and the chosen one marked."""
    finite = torch.where(torch.isfinite(qsnr), qsnr, torch.nan)
    fig = go.Figure(go.Scatter(x=alphas.tolist(), y=finite.tolist(), mode="lines+markers",
                               name="output QSNR"))
    if torch.isfinite(qsnr).any():
        best = int(torch.nan_to_num(finite, nan=-1e9).argmax())
        fig.add_trace(go.Scatter(x=[float(alphas[best])], y=[float(qsnr[best])], mode="markers",
                                 marker={"size": 12, "symbol": "star", "color": "#2ca02c"},
                                 name=f"best alpha {float(alphas[best]):.2f}"))
    if chosen is not None:
        fig.add_vline(x=chosen, line_dash="dash", line_color="#d62728",
                      annotation_text=f"alpha {chosen:g}")
    fig.update_layout(title=title, height=320, xaxis_title="alpha",
                      yaxis_title="output QSNR (dB)",
                      margin={"t": 50, "b": 40, "l": 50, "r": 10})
    return fig
