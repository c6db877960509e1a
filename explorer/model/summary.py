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


def make_sensitivity_figure(summary: WholeModelSummary) -> go.Figure:
    """Bars: top-1 accuracy with only that layer quantized; dashed lines: fp32 and all layers
    quantized. Accuracies in %."""
    names = list(summary.sensitivity)
    values = [100 * summary.sensitivity[n] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, name="only this layer quantized",
                           text=[f"{v:.1f} %" for v in values], textposition="outside"))
    for value, label, dash, where in (
            (summary.fp32_accuracy, "fp32", "dash", "top left"),
            (summary.quantized_accuracy, "all layers quantized", "dot", "bottom right")):
        fig.add_hline(y=100 * value, line_dash=dash, annotation_position=where,
                      annotation_text=f"{label}: {100 * value:.1f} %")
    low = min(values + [100 * summary.quantized_accuracy, 100 * summary.fp32_accuracy])
    fig.update_layout(title="Sensitivity: accuracy with only one layer quantized",
                      xaxis_title="quantized layer", yaxis_title="top-1 accuracy (%)",
                      yaxis_range=[max(0.0, low - 5.0), 102.0], margin={"t": 50},
                      showlegend=False)
    return fig


def make_accuracy_comparison_figure(rows: Sequence[tuple[str, WholeModelSummary]]) -> go.Figure:
    """Side-by-side bars of each labelled summary's quantized accuracy, with the fp32 accuracy
    (the same model for every row) as a dashed line."""
    labels = [label for label, _ in rows]
    values = [100 * s.quantized_accuracy for _, s in rows]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[f"{v:.1f} %" for v in values],
                           textposition="outside", name="quantized"))
    if rows:
        fig.add_hline(y=100 * rows[0][1].fp32_accuracy, line_dash="dash",
                      annotation_text=f"fp32: {100 * rows[0][1].fp32_accuracy:.1f} %")
    low = min(values, default=100.0)
    fig.update_layout(title="Whole-model top-1 accuracy per config", xaxis_title="config",
                      yaxis_title="top-1 accuracy (%)", yaxis_range=[max(0.0, low - 5.0), 102.0],
                      margin={"t": 50}, showlegend=False)
    return fig


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return round(float(value), 2)
