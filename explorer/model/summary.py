"""The "Whole model" view's pure half: quantize every Linear of the digits MLP, summarise, plot.

No Streamlit here. `run_whole_model` applies one set of configs (weight, output and optional
input activation) to every Linear with `explorer.core.model_quant.quantize_model`,
calibrating on the 1437 training rows and evaluating top-1 accuracy on the 360 held-out rows,
and optionally measures each layer's sensitivity (`layer_sensitivity`: accuracy with only that layer
quantized). The result, `WholeModelSummary`, holds only numbers (no model), so it is cheap to
cache. The figure builders turn summaries into bounded Plotly figures (a bar per layer).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from explorer.core.model_quant import layer_sensitivity, quantize_model
from explorer.data.digits import DigitsModel
from quantlib.quant_config import QuantConfig

__all__ = [
    "WholeModelSummary",
    "describe_configs",
    "format_accuracy",
    "layer_table",
    "make_accuracy_comparison_figure",
    "make_layer_qsnr_figure",
    "make_sensitivity_figure",
    "run_whole_model",
]

Progress = Callable[[float, str], None]
INF_BAR_MARGIN_DB = 10.0  # a lossless (+inf dB) bar is drawn this far above the highest finite
QSNR_SERIES = (("weight_qsnr", "Weight"), ("output_qsnr", "Output (this layer's own error)"),
               ("cumulative_output_qsnr", "Output (accumulated from the input)"),
               ("input_qsnr", "Input activation"))


@dataclass(frozen=True)
class WholeModelSummary:
    """One config applied to every Linear of the digits MLP (seed ``seed``).

    ``layers``: one row per Linear (`LayerQuantRow.as_dict`: name, shape, QSNRs in dB, clip
    fractions in [0, 1]); accuracies are top-1 in [0, 1] on ``num_eval_rows`` held-out rows;
    ``sensitivity``: ``{layer: accuracy with only that layer quantized}`` (empty when not
    measured); ``seconds``: ``{"quantize": s, "sensitivity": s}`` wall time.
    """

    seed: int
    layers: tuple[dict, ...]
    fp32_accuracy: float
    quantized_accuracy: float
    num_calibration_rows: int
    num_eval_rows: int
    sensitivity: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy_drop(self) -> float:
        """fp32 minus quantized accuracy (positive when quantization hurts)."""
        return self.fp32_accuracy - self.quantized_accuracy


def run_whole_model(digits: DigitsModel, configs: Mapping[str, QuantConfig | None],
                    sensitivity: bool = True, progress: Progress | None = None
                    ) -> WholeModelSummary:
    """Quantize every Linear of ``digits.model`` with ``configs`` (the loader's ``{'weight',
    'output', 'activation'}``) and summarise; with ``sensitivity``, also quantize one layer at
    a time. ``progress(fraction, text)`` covers both phases."""
    report = progress or (lambda fraction, text: None)
    configs = {"weight": configs["weight"], "output": configs["output"],
               "activation": configs.get("activation")}
    share = 0.4 if sensitivity else 1.0

    def phase(offset: float, width: float, label: str) -> Progress:
        return lambda f, text: report(offset + width * f, f"{label}: {text}")

    start = time.perf_counter()
    result = quantize_model(digits.model, configs, digits.train_x, digits.test_x,
                            digits.test_y, progress=phase(0.0, share, "all layers"))
    seconds = {"quantize": time.perf_counter() - start}
    per_layer: dict[str, float] = {}
    if sensitivity:
        start = time.perf_counter()
        per_layer = layer_sensitivity(digits.model, configs, digits.train_x, digits.test_x,
                                      digits.test_y, progress=phase(share, 1 - share,
                                                                    "one layer at a time"),
                                      full=result)
        seconds["sensitivity"] = time.perf_counter() - start
    report(1.0, "Done")
    return WholeModelSummary(
        seed=digits.seed, layers=tuple(result.table()), fp32_accuracy=result.fp32_accuracy,
        quantized_accuracy=result.quantized_accuracy,
        num_calibration_rows=result.num_calibration_rows, num_eval_rows=result.num_eval_rows,
        sensitivity=per_layer, seconds=seconds)


# --- text and tables -------------------------------------------------------------------------


def format_accuracy(value: float | None) -> str:
    """Top-1 accuracy in [0, 1] as a percentage with one decimal ("n/a" when missing)."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f} %"


def describe_configs(configs: Mapping[str, QuantConfig | None]) -> str:
    """One line per quantized tensor, e.g. ``weight: int8 MinmaxObserver, channel_wise, Uniform``.
    """
    parts = []
    for name in ("weight", "output", "activation"):
        cfg = configs.get(name)
        if cfg is not None:
            parts.append(f"{name}: {cfg.bit_type.name} {cfg.observer_type}, "
                         f"{cfg.calibration_mode}, {cfg.quantization_method}")
    return " · ".join(parts)


def layer_table(summary: WholeModelSummary) -> list[dict]:
    """Rows for the per-layer table: QSNRs in dB and clip shares in % (2 decimals; +inf stays
    inf), plus the accuracy with only that layer quantized when measured."""
    has_input = any(row.get("input_qsnr") is not None for row in summary.layers)
    rows = []
    for row in summary.layers:
        out = {"layer": row["name"], "shape (out x in)": row["shape"],
               "weight QSNR (dB)": _round(row["weight_qsnr"]),
               "output QSNR (dB)": _round(row["output_qsnr"]),
               "accumulated output QSNR (dB)": _round(row["cumulative_output_qsnr"]),
               "weight clipped (%)": _round(100 * row["weight_clip_fraction"]),
               "output clipped (%)": _round(100 * row["output_clip_fraction"])}
        if has_input:
            out["input QSNR (dB)"] = _round(row["input_qsnr"])
            out["input clipped (%)"] = _round(100 * (row["input_clip_fraction"] or 0.0))
        if summary.sensitivity:
            out["accuracy, only this layer quantized (%)"] = _round(
                100 * summary.sensitivity[row["name"]])
        rows.append(out)
    return rows


# --- figures ---------------------------------------------------------------------------------


def make_layer_qsnr_figure(summary: WholeModelSummary) -> go.Figure:
    """Grouped bars per layer: weight QSNR, the output's own and accumulated QSNR (and the
    input's with an activation config). A lossless +inf bar is drawn above the highest finite
    bar and labelled "∞"."""
    names = [row["name"] for row in summary.layers]
    series = [(key, label) for key, label in QSNR_SERIES
              if all(row.get(key) is not None for row in summary.layers)]
    finite = [row[key] for row in summary.layers for key, _ in series
              if math.isfinite(row[key])]
    top = (max(finite) if finite else 0.0) + INF_BAR_MARGIN_DB
    fig = go.Figure()
    for key, label in series:
        values = [row[key] for row in summary.layers]
        fig.add_bar(x=names, y=[top if v == math.inf else v for v in values], name=label,
                    text=["∞" if v == math.inf else f"{v:.1f}" for v in values],
                    textposition="outside",
                    hovertemplate="%{x}: %{text} dB<extra>" + label + "</extra>")
    fig.update_layout(title="QSNR per layer (all layers quantized)", barmode="group",
                      xaxis_title="layer", yaxis_title="QSNR (dB)",
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 50})
    return fig


REFERENCE_LINES = (("fp32", "dash", "rgba(60, 60, 60, 0.9)"),
                   ("all layers quantized", "dot", "#d62728"))
ACCURACY_CEILING = 100.0  # the accuracy axes stop at 100 %: no room is needed above the bars


def _accuracy_axis_range(values: Sequence[float]) -> list[float]:
    """[low, 100]: 5 points below the lowest accuracy (at least 0), up to exactly 100 %."""
    low = min(values, default=ACCURACY_CEILING)
    return [max(0.0, low - 5.0), ACCURACY_CEILING]


def _add_reference_line(fig: go.Figure, value: float, label: str, dash: str,
                        color: str) -> None:
    """A dashed horizontal line across the plot at ``value`` %, named in the legend (not an
    annotation on the plot, which would sit on the bars' labels)."""
    fig.add_hline(y=value, line_dash=dash, line_color=color, line_width=1.5)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{label}: {value:.1f} %",
                             line={"dash": dash, "color": color, "width": 1.5},
                             hoverinfo="skip"))


def _labelled_axis(fig: go.Figure, names: Sequence[str], values: Sequence[float]) -> None:
    """Each bar's value under its name on the category axis (``fc1<br>96.9 %``): a label
    there can never sit on a bar or a reference line, at any height."""
    fig.update_xaxes(tickmode="array", tickvals=list(names),
                     ticktext=[f"{n}<br>{v:.1f} %" for n, v in zip(names, values)])


def make_sensitivity_figure(summary: WholeModelSummary) -> go.Figure:
    """Bars: top-1 accuracy with only that layer quantized, each value written under its
    layer's name on the axis; lines: fp32 and all layers quantized, named in the legend below
    the plot (no labels on the plot, so nothing overlaps). Accuracies in %, the axis ends at
    100 %."""
    names = list(summary.sensitivity)
    values = [100 * summary.sensitivity[n] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, name="only this layer quantized",
                           marker_color="#1f77b4",
                           hovertemplate="only %{x} quantized: %{y:.1f} %<extra></extra>"))
    _labelled_axis(fig, names, values)
    references = (100 * summary.fp32_accuracy, 100 * summary.quantized_accuracy)
    for value, (label, dash, color) in zip(references, REFERENCE_LINES):
        _add_reference_line(fig, value, label, dash, color)
    fig.update_layout(title="Sensitivity: accuracy with only one layer quantized",
                      xaxis_title="quantized layer", yaxis_title="top-1 accuracy (%)",
                      yaxis_range=_accuracy_axis_range([*values, *references]),
                      margin={"t": 50}, showlegend=True,
                      legend={"orientation": "h", "y": -0.3})
    return fig


def make_accuracy_comparison_figure(rows: Sequence[tuple[str, WholeModelSummary]]) -> go.Figure:
    """Side-by-side bars of each labelled summary's quantized accuracy (the value under each
    label on the axis), with the fp32 accuracy (the same model for every row) as a dashed line
    named in the legend. The axis ends at 100 %."""
    labels = [label for label, _ in rows]
    values = [100 * s.quantized_accuracy for _, s in rows]
    fig = go.Figure(go.Bar(x=labels, y=values, name="quantized",
                           hovertemplate="%{x}: %{y:.1f} %<extra></extra>"))
    _labelled_axis(fig, labels, values)
    references = []
    if rows:
        references.append(100 * rows[0][1].fp32_accuracy)
        label, dash, color = REFERENCE_LINES[0]
        _add_reference_line(fig, references[0], label, dash, color)
    fig.update_layout(title="Whole-model top-1 accuracy per config", xaxis_title="config",
                      yaxis_title="top-1 accuracy (%)",
                      yaxis_range=_accuracy_axis_range([*values, *references]),
                      margin={"t": 50}, showlegend=True, legend={"orientation": "h", "y": -0.35})
    return fig


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return round(float(value), 2)
