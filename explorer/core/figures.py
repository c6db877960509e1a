"""Pure Plotly figure builders for the explorer: ``make_*_figure(data) -> go.Figure``.

Inputs are plain data (torch tensors, numpy arrays, floats and dicts from the profiler); no
Streamlit here. Every figure's payload is bounded whatever the layer size: histograms are at most
``MAX_HISTOGRAM_BINS`` bins, heatmaps at most ``MAX_HEATMAP_SIDE`` squared cells, per-channel
plots at most ``MAX_CHANNEL_POINTS`` points and level grids at most ``MAX_LEVEL_LINES`` lines.
Arrays reach Plotly as numpy, which it serialises as compact base64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from explorer.core.blocks import MAX_HEATMAP_SIDE, block_reduce

MAX_HISTOGRAM_BINS = 512
MAX_CHANNEL_POINTS = 4096
MAX_LEVEL_LINES = 64
LOG_EMPTY_BIN = 0.5  # where a log-scale histogram draws an empty bin: under a count of 1
INF_QSNR_MARGIN_DB = 10.0
ALL_LOSSLESS_DISPLAY_DB = 100.0

FP32_COLOR = "#1f77b4"
FP32_FILL = "rgba(31, 119, 180, 0.25)"
DEQUANT_COLOR = "#ff7f0e"
CLIP_COLOR = "#d62728"
LEVEL_COLOR = "rgba(120, 120, 120, 0.35)"


# The Single layer tab's figures sit two abreast under the editors: shorter than Plotly's
# 450 px with a slimmer top margin, they fit above the fold of a 1400 x 1000 window.
COMPACT_HEIGHT = 380
COMPACT_MARGIN = {"t": 48, "b": 8, "l": 56, "r": 24}


def make_histogram_figure(
    histogram: Mapping,
    title: str,
    levels: torch.Tensor | None = None,
    log_y: bool = False,
    subtitle: str = "",
) -> go.Figure:
    """Overlay fp32 and dequantized value histograms on shared bins, as step outlines.

    ``histogram`` holds ``edges`` [B+1], ``fp32_counts`` [B], ``dequant_counts`` [B] and
    ``clip_range`` (lo, hi); histograms with more than ``MAX_HISTOGRAM_BINS`` bins are merged
    down. The clip range is drawn as dashed vertical lines named "clip lo" / "clip hi".
    ``levels`` [L] (the dequantized grid, meant for <= 6 bits) is drawn as a light vertical grid
    of at most ``MAX_LEVEL_LINES`` lines. ``subtitle`` and the level count go on a second,
    smaller title line (a half-width chart cuts a long one-line title).
    """
    edges = as_numpy(histogram["edges"], np.float64)
    fp32_counts = as_numpy(histogram["fp32_counts"], np.float64)
    dequant_counts = as_numpy(histogram["dequant_counts"], np.float64)
    num_bins = edges.size - 1
    if (
        edges.ndim != 1
        or num_bins < 1
        or not (fp32_counts.shape == dequant_counts.shape == (num_bins,))
    ):
        raise ValueError(
            "histogram needs edges [B+1] and fp32_counts/dequant_counts [B]; got shapes "
            f"{edges.shape}, {fp32_counts.shape}, {dequant_counts.shape}"
        )
    edges, (fp32_counts, dequant_counts) = _merge_bins(
        edges, [fp32_counts, dequant_counts], MAX_HISTOGRAM_BINS
    )
    # Step outlines (one SVG path per trace, far cheaper to draw than a bar per bin): fp32 as
    # a filled area, the dequantized copy as a line on top, so neither hides the other.
    # ``x`` is the B+1 edges and ``y`` each bin's count, repeated at the last edge.
    # On a log axis an empty bin is drawn at LOG_EMPTY_BIN, under the lowest count (1), so the
    # outline stays one path: gaps (NaN) split a sparse dequantized histogram into a path per
    # non-empty bin, 100+ SVG paths for the browser to build on every edit. The hover reads
    # the true count from customdata [bin start, bin end, count].
    next_edges = np.append(edges[1:], edges[-1])
    traces = []
    for name, counts, style in (
        ("fp32", fp32_counts, {"line": {"color": FP32_COLOR, "width": 1},
                               "fill": "tozeroy", "fillcolor": FP32_FILL}),
        ("dequantized", dequant_counts, {"line": {"color": DEQUANT_COLOR, "width": 1.5}}),
    ):
        shown = np.where(counts > 0, counts, LOG_EMPTY_BIN) if log_y else counts
        traces.append({
            "type": "scatter", "x": edges, "y": np.append(shown, shown[-1]), "name": name,
            "mode": "lines", "line_shape": "hv",
            "customdata": np.stack([edges, next_edges, np.append(counts, counts[-1])], -1),
            "hovertemplate": (f"<b>{name}</b><br>bin [%{{customdata[0]:.4g}}, "
                              "%{customdata[1]:.4g})<br>count %{customdata[2]:,}<extra></extra>"),
            **style,
        })
    clip_lo, clip_hi = (float(v) for v in histogram["clip_range"])
    shapes = [
        _vertical_line(x, name=name, showlegend=True,
                       line={"color": CLIP_COLOR, "dash": "dash", "width": 2},
                       label={"text": f"{name} = {x:.4g}", "textposition": "end",
                              "font": {"size": 11}})
        for name, x in (("clip lo", clip_lo), ("clip hi", clip_hi))
    ]
    note = ""
    if levels is not None:
        level_lines, note = _level_lines(as_numpy(levels, np.float64).ravel())
        shapes += level_lines
    second = " · ".join(part for part in (subtitle, note) if part)
    yaxis = {"title": {"text": "count (log scale)" if log_y else "count"}}
    if log_y:
        yaxis.update(type="log", dtick=1)  # label powers of ten only, not 2 and 5
    # One constructor call: Plotly validates the whole figure once (8 ms), where add_vline and
    # update_layout per part took 20-40 ms.
    return go.Figure({"data": traces, "layout": {
        "title": {"text": title + (f"<br><sup>{second}</sup>" if second else "")},
        "hovermode": "closest", "xaxis": {"title": {"text": "value"}}, "yaxis": yaxis,
        "legend": {"orientation": "h", "y": -0.3}, "shapes": shapes,
        "height": COMPACT_HEIGHT, "margin": {**COMPACT_MARGIN, "t": 64 if second else 48},
    }})


def _vertical_line(x: float, **style) -> dict:
    """A shape spanning the plot's height at ``x`` (what ``add_vline`` makes)."""
    return {"type": "line", "xref": "x", "yref": "y domain", "x0": x, "x1": x, "y0": 0,
            "y1": 1, **style}


def make_error_heatmap(
    error: torch.Tensor,
    title: str,
    row_label: str,
    col_label: str,
    reduce: str = "mean",
) -> go.Figure:
    """Heatmap of ``|error|`` [R, C], block-aggregated to at most 256 x 256 cells.

    Axes are in original index units (each cell sits at its block's first row/column); the
    colour bar says how cells were aggregated, e.g. "mean |error| per 3×3 block".
    """
    reduced, row_block, col_block = block_reduce(error, MAX_HEATMAP_SIDE, reduce)
    shape = tuple(torch.as_tensor(error).shape)
    return make_block_heatmap(
        reduced, row_block, col_block, shape, title, row_label, col_label, reduce
    )


def make_block_heatmap(
    reduced: torch.Tensor,
    row_block: int,
    col_block: int,
    shape: tuple[int, int],
    title: str,
    row_label: str,
    col_label: str,
    reduce: str = "mean",
    log_color: bool = False,
) -> go.Figure:
    """Heatmap of an already block-reduced ``|error|`` map (see `block_reduce`).

    ``reduced`` [ceil(R/row_block), ceil(C/col_block)] came from a ``shape`` = (R, C) matrix;
    callers that keep only the reduced map (not the full error) draw it with this.
    ``log_color`` colours by log10 |error| (exact zeros left blank), so rounding noise that a
    linear scale paints one flat colour beside a few large errors becomes visible.
    """
    aggregated = row_block > 1 or col_block > 1
    value_label = f"{reduce} |error| per {row_block}×{col_block} block" if aggregated else "|error|"
    z = as_numpy(reduced, np.float32)
    colorbar = {"title": {"text": value_label, "side": "right"}}
    shown = "%{z:.4g}"
    if log_color:
        z = np.where(z > 0, np.log10(z, where=z > 0, out=np.zeros_like(z)), np.nan)
        finite = z[np.isfinite(z)]
        if finite.size:
            low, high = math.floor(float(finite.min())), math.ceil(float(finite.max()))
            ticks = list(range(low, high + 1))
            colorbar.update(tickvals=ticks, ticktext=[f"1e{t}" for t in ticks])
        colorbar["title"]["text"] = f"{value_label} (log scale)"
        shown = "10^%{z:.2f}"
    row_starts = np.arange(reduced.shape[0]) * row_block
    col_starts = np.arange(reduced.shape[1]) * col_block
    where = _block_position(row_label, col_label, row_block, col_block)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=col_starts,
            y=row_starts,
            colorscale="Viridis",
            colorbar=colorbar,
            hovertemplate=f"{where}<br>{value_label}: {shown}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{title}: {value_label} ({shape[0]}×{shape[1]})",
        xaxis_title=col_label,
        yaxis_title=row_label,
        height=COMPACT_HEIGHT, margin=COMPACT_MARGIN,
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def make_scale_heatmap(
    reduced: torch.Tensor,
    row_block: int,
    col_block: int,
    shape: tuple[int, int],
    title: str,
    row_label: str,
    col_label: str,
) -> go.Figure:
    """Heatmap of per-block scales [R, B] (already mean-aggregated to at most 256 x 256 cells,
    see `block_reduce`), coloured by log2(scale): a power-of-two (E8M0) scale is one colour
    step per exponent, and an outlier block stands out as a bright cell. The hover shows the
    scale itself."""
    z = as_numpy(reduced, np.float64)
    log2 = np.where(z > 0, np.log2(np.where(z > 0, z, 1.0)), np.nan)
    aggregated = row_block > 1 or col_block > 1
    value_label = f"mean scale per {row_block}×{col_block} cells" if aggregated else "scale"
    where = _block_position(row_label, col_label, row_block, col_block)
    fig = go.Figure(go.Heatmap(
        z=log2, x=np.arange(z.shape[1]) * col_block, y=np.arange(z.shape[0]) * row_block,
        customdata=z, colorscale="Viridis",
        colorbar={"title": {"text": "log2(scale)", "side": "right"}},
        hovertemplate=(f"{where}<br>{value_label}: %{{customdata:.4g}}"
                       "<br>log2: %{z:.2f}<extra></extra>")))
    fig.update_layout(title=f"{title} ({shape[0]}×{shape[1]} scales)", xaxis_title=col_label,
                      yaxis_title=row_label, height=COMPACT_HEIGHT, margin=COMPACT_MARGIN)
    fig.update_yaxes(autorange="reversed")
    return fig


def _block_position(row_label: str, col_label: str, row_block: int, col_block: int) -> str:
    """A block heatmap cell's hover position: its first row and column, and the block's
    extent when cells aggregate blocks."""
    if row_block > 1 or col_block > 1:
        return f"{row_label} %{{y}}…+{row_block - 1}<br>{col_label} %{{x}}…+{col_block - 1}"
    return f"{row_label} %{{y}}<br>{col_label} %{{x}}"


def make_timing_figure(time_ms: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Horizontal stacked bars of time per stage (ms), one bar per tensor: tensor -> stage -> ms."""
    tensors = list(time_ms)
    stages = list(dict.fromkeys(stage for tensor in tensors for stage in time_ms[tensor]))
    fig = go.Figure()
    for stage in stages:
        durations = [time_ms[tensor].get(stage) for tensor in tensors]
        fig.add_trace(
            go.Bar(
                y=tensors,
                x=[np.nan if d is None else float(d) for d in durations],
                name=stage,
                orientation="h",
                hovertemplate=f"%{{y}} / {stage}: %{{x:.3f}} ms<extra></extra>",
            )
        )
    fig.update_layout(
        title="Time per stage" if tensors else "Time per stage (no timing data)",
        barmode="stack",
        xaxis_title="time (ms)",
        yaxis_title="tensor",
        height=200 + 60 * max(1, len(tensors)),
    )
    return fig


def make_memory_figure(memory: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Grouped bars per tensor: fp32 bytes vs packed quantized bytes vs quantization-param bytes.

    Each ``memory[tensor]`` holds ``fp32_bytes``, ``quantized_bytes``, ``qparam_bytes`` and
    ``compression_ratio``; the ratio is printed on the quantized bar.
    """
    tensors = list(memory)
    ratios = [float(memory[t].get("compression_ratio", math.nan)) for t in tensors]
    fig = go.Figure()
    for key, name, color in (
        ("fp32_bytes", "fp32", FP32_COLOR),
        ("quantized_bytes", "quantized (packed)", DEQUANT_COLOR),
        ("qparam_bytes", "scales + zero points", "#7f7f7f"),
    ):
        sizes = [int(memory[t][key]) for t in tensors]
        text = [f"{r:.2f}×" for r in ratios] if key == "quantized_bytes" else None
        fig.add_trace(
            go.Bar(
                x=tensors,
                y=sizes,
                name=name,
                marker_color=color,
                text=text,
                textposition="outside",
                customdata=ratios,
                hovertemplate=f"%{{x}} {name}: %{{y:,}} bytes"
                "<br>compression %{customdata:.2f}×<extra></extra>",
            )
        )
    fig.update_layout(
        title="Memory: fp32 vs quantized" + ("" if tensors else " (no memory data)"),
        barmode="group",
        xaxis_title="tensor",
        yaxis_title="bytes",
    )
    fig.update_yaxes(tickformat="~s")
    return fig


def figure_payload_bytes(fig: go.Figure) -> int:
    """Size in bytes of the figure's JSON, i.e. what the browser receives."""
    return len(fig.to_json().encode("utf-8"))


def _level_lines(levels: np.ndarray) -> tuple[list[dict], str]:
    """Up to ``MAX_LEVEL_LINES`` evenly chosen levels as light vertical lines, and a title
    note."""
    levels = np.unique(levels[np.isfinite(levels)])
    drawn = levels
    if levels.size > MAX_LEVEL_LINES:
        drawn = levels[np.linspace(0, levels.size - 1, MAX_LEVEL_LINES).round().astype(int)]
    line = {"color": LEVEL_COLOR, "width": 1}
    lines = [_vertical_line(x, name="quantization level", layer="below", line=line)
             for x in drawn.tolist()]
    if drawn.size < levels.size:
        return lines, f"showing {drawn.size} of {levels.size} quantization levels"
    return lines, f"{levels.size} quantization levels"


def _merge_bins(
    edges: np.ndarray, counts: Sequence[np.ndarray], max_bins: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Merge groups of adjacent bins so there are at most ``max_bins``; counts are summed."""
    group = math.ceil((edges.size - 1) / max_bins)
    if group <= 1:
        return edges, list(counts)
    merged = [block_reduce_1d(c, group, np.add, pad_value=0.0) for c in counts]
    return np.append(edges[:-1:group], edges[-1]), merged


def block_reduce_1d(
    values: np.ndarray, block: int, ufunc: np.ufunc, pad_value: float | None = None
) -> np.ndarray:
    """Reduce consecutive blocks of ``block`` values [N] -> [ceil(N/block)] with ``ufunc``.

    The partial last block is padded with ``pad_value``, or by repeating its last value (which
    leaves min/max unchanged).
    """
    if block == 1:
        return values
    missing = -values.size % block
    if pad_value is None:
        padded = np.pad(values, (0, missing), mode="edge")
    else:
        padded = np.pad(values, (0, missing), constant_values=pad_value)
    return ufunc.reduce(padded.reshape(-1, block), axis=1)


def as_numpy(values, dtype) -> np.ndarray:
    """Tensor / array / list -> numpy array of ``dtype`` (detached, on CPU)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            values = values.float()
        values = values.numpy()
    return np.asarray(values, dtype=dtype)
