"""Pure Plotly figures of the compare view; no Streamlit here.

Every trace of a config is named after the config and drawn in its colour (``colors`` maps a
config name to a CSS colour), so one config reads the same on every chart. Payloads stay
bounded: histograms have at most 256 bins, curves 200 points per line, and per-channel lines
(sorted worst to best) at most ``MAX_CHANNEL_POINTS`` points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from explorer.compare.clip import ClipView
from explorer.compare.formats import pareto_front
from explorer.compare.runs import Sweep, ideal_qsnr
from explorer.core.channel_figures import sorted_channel_curve
from explorer.core.figures import INF_QSNR_MARGIN_DB
from explorer.core.formatting import format_fixed

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
FP32_BAR_COLOR = "rgba(110, 110, 110, 0.55)"
IDEAL_COLOR = "rgba(60, 60, 60, 0.8)"
TENSOR_TITLES = {"weight": "Weight", "output": "Output"}


def config_colors(names) -> dict[str, str]:
    """A colour per config name, in order."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def make_sweep_figure(sweeps: Mapping[str, Sweep], chosen: Mapping[str, Mapping[str, int]],
                      colors: Mapping[str, str], per_element: bool = False) -> go.Figure:
    """QSNR against bits for each config, weight (left) and output (right), with the ideal
    uniform quantizer's line 20·log10(2^b − 1) (6.02 dB per bit) and a star at each config's
    own bit width (``chosen[name]['weight' | 'output']``). +inf QSNR (lossless) is drawn at a
    cap above the finite values and said so in the hover.

    ``per_element``: the x-axis is bits per element, scales included (the sweep's
    ``weight_bpe``/``output_bpe``), for configs whose formats differ; a float format is one
    point, and the ideal line (a property of integer widths) is left out."""
    if per_element:
        return _sweep_per_element(sweeps, chosen, colors)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Weight QSNR", "Output QSNR"),
                        horizontal_spacing=0.08)
    all_bits = sorted({b for s in sweeps.values() for b in s.bits})
    finite = [q for s in sweeps.values() for q in (*s.weight_qsnr, *s.output_qsnr)
              if math.isfinite(q)]
    cap = (max(finite) if finite else 0.0) + INF_QSNR_MARGIN_DB
    for col, tensor in ((1, "weight"), (2, "output")):
        ideal = [ideal_qsnr(b) for b in all_bits]
        fig.add_trace(go.Scatter(
            x=all_bits, y=ideal, mode="lines", name="ideal: 20·log10(2^b − 1)",
            line={"color": IDEAL_COLOR, "dash": "dash"}, legendgroup="ideal",
            showlegend=col == 1,
            hovertemplate="%{x} bits: ideal %{y:.2f} dB<extra></extra>"), row=1, col=col)
        for name, sweep in sweeps.items():
            raw = sweep.weight_qsnr if tensor == "weight" else sweep.output_qsnr
            shown = [min(q, cap) for q in raw]
            text = ["+inf (lossless)" if q == math.inf else f"{q:.2f} dB" for q in raw]
            lost = [format_fixed(ideal_qsnr(b) - q, 2) for b, q in zip(sweep.bits, raw)]
            color = colors[name]
            fig.add_trace(go.Scatter(
                x=list(sweep.bits), y=shown, mode="lines+markers", name=name,
                line={"color": color}, legendgroup=name, showlegend=col == 1,
                customdata=np.stack([text, lost], axis=-1),
                hovertemplate=f"<b>{name}</b> {tensor}, %{{x}} bits<br>QSNR %{{customdata[0]}}"
                              "<br>%{customdata[1]} dB below ideal<extra></extra>"),
                row=1, col=col)
            bits = chosen.get(name, {}).get(tensor)
            if bits in sweep.bits:
                q = raw[sweep.bits.index(bits)]
                fig.add_trace(go.Scatter(
                    x=[bits], y=[min(q, cap)], mode="markers", name=f"{name} (its width)",
                    marker={"symbol": "star", "size": 14, "color": color,
                            "line": {"width": 1, "color": "black"}},
                    legendgroup=name, showlegend=False,
                    hovertemplate=f"<b>{name}</b>: its {tensor} width, {bits} bits<br>"
                                  f"{format_fixed(ideal_qsnr(bits) - q, 2)} dB below ideal"
                                  "<extra></extra>"),
                    row=1, col=col)
        fig.update_xaxes(title_text="bits (weight and output)", dtick=1 if len(all_bits) <= 8
                         else 2, row=1, col=col)
        fig.update_yaxes(title_text="QSNR (dB)", row=1, col=col)
    fig.update_layout(title="Bit-width sweep: QSNR vs bits (no recalibration; ★ = the "
                            "config's own width)",
                      hovermode="closest", legend={"orientation": "h", "y": -0.2}, height=460)
    return fig


def make_channels_figure(per_channel: Mapping[str, Mapping[str, torch.Tensor]],
                         colors: Mapping[str, str]) -> go.Figure:
    """Per-channel QSNR [C] of every config, each sorted from its worst to its best channel
    (`sorted_channel_curve`): one monotone line per config instead of C raw index points.
    Weight (top) and output (bottom); the hover names the channel. Lossless (+inf) channels
    are drawn at a cap above the finite values."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("Weight: output channels, worst to best",
                                        "Output: output channels, worst to best"))
    values = [np.asarray(t[k].double().numpy()) for t in per_channel.values() for k in t]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    cap = (finite.max() if finite.size else 0.0) + INF_QSNR_MARGIN_DB
    floor = (min(finite.min(), 0.0) if finite.size else 0.0) - INF_QSNR_MARGIN_DB
    for row, tensor in ((1, "weight"), (2, "output")):
        for name, tensors in per_channel.items():
            qsnr = np.clip(np.nan_to_num(tensors[tensor].double().numpy(), nan=floor),
                           floor, cap)
            share, shown, channel = sorted_channel_curve(qsnr)
            fig.add_trace(go.Scatter(
                x=share, y=shown, customdata=channel, mode="lines", name=name,
                line={"color": colors[name], "width": 2}, legendgroup=name,
                showlegend=row == 1,
                hovertemplate=f"<b>{name}</b> {tensor}<br>channel %{{customdata}}: "
                              "%{y:.2f} dB<br>%{x:.0f} % of the channels are worse"
                              "<extra></extra>"), row=row, col=1)
        fig.update_yaxes(title_text="QSNR (dB)", row=row, col=1)
    fig.update_xaxes(title_text="channels sorted by QSNR (% of channels, worst first)",
                     ticksuffix=" %", range=[0, 100], row=2, col=1)
    fig.update_layout(title="Per-channel QSNR, each config's channels sorted worst to best",
                      hovermode="closest", height=560, legend={"orientation": "h", "y": -0.15})
    return fig


def make_clip_histogram_figure(view: ClipView, colors: Mapping[str, str],
                               title: str) -> go.Figure:
    """fp32 histogram of the tensor (log counts) with each config's clip range (lo and hi,
    one dashed line each) in its colour; channel_wise configs over a whole tensor show the
    median of their per-channel ranges (said in the hover)."""
    edges = view.edges.double().numpy()
    counts = view.counts.double().numpy()
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(
        x=centers, y=counts, width=np.diff(edges), name="fp32 values",
        marker_color=FP32_BAR_COLOR,
        hovertemplate="value %{x:.4g}<br>count %{y:,}<extra></extra>"))
    top = max(float(counts.max()), 1.0) * 2.0
    for mark in view.marks:
        fig.add_trace(go.Scatter(
            x=[mark.clip_lo, mark.clip_lo, None, mark.clip_hi, mark.clip_hi],
            y=[0.5, top, None, 0.5, top], mode="lines", name=mark.name,
            line={"color": colors[mark.name], "dash": "dash", "width": 2},
            hovertemplate=f"<b>{mark.name}</b><br>clip range [{mark.clip_lo:.4g}, "
                          f"{mark.clip_hi:.4g}]<br>({mark.note})<extra></extra>"))
    fig.update_layout(title=f"{title}: values and each config's clip range ({view.scope})",
                      bargap=0, hovermode="closest", xaxis_title="value",
                      yaxis_title="count (log scale)", legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(type="log")
    return fig


def marker_height(curve, mark) -> float:
    """Where a config's dot sits: on ``curve``'s total MSE at the config's threshold (linear
    interpolation between the curve's points), so every dot is on the line. A config whose
    range the one-threshold curve cannot hold exactly (channel_wise over the whole tensor,
    Affine) still sits on it at its t; its own MSE is in the hover. NaN when the curve is 0
    there (nothing to draw on a log axis)."""
    t = curve.thresholds.double().numpy()
    y = float(np.interp(mark.threshold, t, curve.total.double().numpy()))
    return y if y > 0 else float("nan")


def make_clip_curve_figure(view: ClipView, colors: Mapping[str, str], title: str) -> go.Figure:
    """MSE against the clip threshold t: total, clipping (overload) and rounding (granular)
    error, one set of lines per (bits, method) among the configs, and each config's chosen t
    as a filled dot on its curve's total (`marker_height`); the hover gives its own MSE."""
    fig = go.Figure()
    several = len(view.curves) > 1
    for curve in view.curves:
        t = curve.thresholds.numpy()
        suffix = f" ({curve.label})" if several else ""
        for name, values, dash in (("total MSE", curve.total, "solid"),
                                   ("clipping error", curve.clipping, "dash"),
                                   ("rounding error", curve.rounding, "dot")):
            y = values.numpy()
            fig.add_trace(go.Scatter(
                x=t, y=np.where(y > 0, y, np.nan), mode="lines", name=name + suffix,
                line={"color": IDEAL_COLOR if name == "total MSE" else "#7f7f7f",
                      "dash": dash, "width": 2 if name == "total MSE" else 1.5},
                hovertemplate=f"{name}{suffix}<br>t = %{{x:.4g}}<br>MSE %{{y:.3e}}"
                              "<extra></extra>"))
    for mark in view.marks:
        curve = view.curves[mark.curve]
        fig.add_trace(go.Scatter(
            x=[mark.threshold], y=[marker_height(curve, mark)], mode="markers",
            name=mark.name,
            marker={"size": 12, "color": colors[mark.name], "symbol": "circle",
                    "line": {"width": 1.5, "color": "white"}},
            hovertemplate=(f"<b>{mark.name}</b>: t = {mark.threshold:.4g}<br>clip range "
                           f"[{mark.clip_lo:.4g}, {mark.clip_hi:.4g}]<br>its MSE "
                           f"{mark.mse:.3e} = clipping {mark.clipping_mse:.3e} + rounding "
                           f"{mark.rounding_mse:.3e}<br>({mark.note})<extra></extra>")))
    fig.update_layout(title=f"{title}: MSE vs clip threshold ({view.scope})",
                      hovermode="closest", xaxis_title="clip threshold t (values beyond ±t "
                                                       "are clipped)",
                      yaxis_title="MSE (log scale)", legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(type="log")
    return fig


def _sweep_per_element(sweeps: Mapping[str, Sweep], chosen: Mapping[str, Mapping[str, int]],
                       colors: Mapping[str, str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Weight QSNR", "Output QSNR"),
                        horizontal_spacing=0.08)
    finite = [q for s in sweeps.values() for q in (*s.weight_qsnr, *s.output_qsnr)
              if math.isfinite(q)]
    cap = (max(finite) if finite else 0.0) + INF_QSNR_MARGIN_DB
    for col, tensor in ((1, "weight"), (2, "output")):
        for name, sweep in sweeps.items():
            raw = sweep.weight_qsnr if tensor == "weight" else sweep.output_qsnr
            x = list(sweep.weight_bpe if tensor == "weight" else sweep.output_bpe)
            if len(x) != len(raw):
                continue
            shown = [min(q, cap) for q in raw]
            text = ["+inf (lossless)" if q == math.inf else f"{q:.2f} dB" for q in raw]
            color = colors[name]
            fig.add_trace(go.Scatter(
                x=x, y=shown, mode="lines+markers", name=name, line={"color": color},
                legendgroup=name, showlegend=col == 1,
                customdata=np.stack([text, [str(b) for b in sweep.bits]], axis=-1),
                hovertemplate=f"<b>{name}</b> {tensor}: %{{customdata[1]}}-bit elements, "
                              "%{x:.3f} bits/element<br>QSNR %{customdata[0]}<extra></extra>"),
                row=1, col=col)
            bits = chosen.get(name, {}).get(tensor)
            if bits in sweep.bits:
                i = sweep.bits.index(bits)
                fig.add_trace(go.Scatter(
                    x=[x[i]], y=[shown[i]], mode="markers", name=f"{name} (its width)",
                    marker={"symbol": "star", "size": 14, "color": color,
                            "line": {"width": 1, "color": "black"}},
                    legendgroup=name, showlegend=False,
                    hovertemplate=f"<b>{name}</b>: its own {tensor} config, "
                                  f"{x[i]:.3f} bits/element<extra></extra>"), row=1, col=col)
        _label_bits_qsnr_axes(fig, col)
    fig.update_layout(title="Bit-width sweep: QSNR vs bits per element (float formats: one "
                            "point each; ★ = the config's own)",
                      hovermode="closest", legend={"orientation": "h", "y": -0.2}, height=460)
    return fig


def _label_bits_qsnr_axes(fig: go.Figure, col: int) -> None:
    fig.update_xaxes(title_text="bits per element (scales included)", row=1, col=col)
    fig.update_yaxes(title_text="QSNR (dB)", row=1, col=col)


def make_pareto_figure(runs: Mapping, colors: Mapping[str, str]) -> go.Figure:
    """QSNR against bits per element (scales included), one point per config, weight (left)
    and output (right); the Pareto front (no other config has fewer bits and more QSNR) is
    joined by a line. ``runs``: name -> `runs.ConfigRun`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Weight", "Output"),
                        horizontal_spacing=0.08)
    for col, tensor in ((1, "weight"), (2, "output")):
        points = {name: (run.tensors[tensor].bits_per_element, run.tensors[tensor].qsnr)
                  for name, run in runs.items()}
        finite = [q for _, q in points.values() if math.isfinite(q)]
        cap = (max(finite) if finite else 0.0) + INF_QSNR_MARGIN_DB
        front = pareto_front({n: (b, min(q, cap)) for n, (b, q) in points.items()})
        if len(front) > 1:
            fig.add_trace(go.Scatter(
                x=[points[n][0] for n in front], y=[min(points[n][1], cap) for n in front],
                mode="lines", name="Pareto front", line={"color": IDEAL_COLOR, "dash": "dot"},
                legendgroup="front", showlegend=col == 1, hoverinfo="skip"), row=1, col=col)
        for name, (bpe, q) in points.items():
            fig.add_trace(go.Scatter(
                x=[bpe], y=[min(q, cap)], mode="markers+text", name=name, text=[name],
                textposition="top center", legendgroup=name, showlegend=col == 1,
                marker={"size": 12, "color": colors[name],
                        "symbol": "star" if name in front else "circle"},
                hovertemplate=f"<b>{name}</b> {tensor}<br>%{{x:.3f}} bits/element<br>QSNR "
                              + ("+inf (lossless)" if q == math.inf else f"{q:.2f} dB")
                              + ("<br>on the Pareto front" if name in front else "")
                              + "<extra></extra>"), row=1, col=col)
        _label_bits_qsnr_axes(fig, col)
    fig.update_layout(title="QSNR vs bits per element (★ = on the Pareto front: nothing "
                            "cheaper is better)",
                      hovermode="closest", legend={"orientation": "h", "y": -0.2}, height=420)
    return fig
