"""Pure data behind the Teach tab (no Streamlit): one calibrated layer and what each panel shows.

`analyse_layer` takes the calibrated `QuantLinear` the results come from (`build_analysis`
builds one with `pipeline.build_layer`), then keeps, per quantized tensor, exactly what
its quantizer saw and used: the values, the qparams, the observer's range and the integer codes.
Every panel function below reads from that, so the numbers on the page are the layer's own:

- `explain`: the method's formulas with one channel's numbers (`lessons.formula_lines`);
- `follow_weight`: one weight through x -> x*(1/s) -> round -> +zp -> clamp -> (q - zp)*s,
  checked against the layer's stored code and dequantized weight;
- `cell_to_weight`: a clicked heatmap cell (a block of weights) -> one weight index;
- `decompose`: total MSE = clipping + rounding, per tensor and per channel, vs Δ²/12;
- `integer_codes`: which of the 2^b codes are used, and the entropy in bits;
- `scenario_rows`: config A vs config B of a scenario, metric by metric.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from explorer.core.blocks import block_reduce
from explorer.core.cache import store
from explorer.core.pipeline import (
    TENSOR_TITLES,
    DataSettings,
    PipelineResult,
    SampleData,
    build_layer,
)
from explorer.data.cache import Uploads, sample_data
from explorer.single.results import cached_layer, result_key
from explorer.teach.formats import block_trace
from explorer.teach.lessons import OBSERVER_NOTES, formula_lines
from quantlib import analysis as QA
from quantlib.formats.grid import signed_grid
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

CLICK_GRID_SIDE = 64  # the clickable heatmap: at most 64 x 64 cells (one marker per cell)
ROUNDING_ONLY_RMSE_OVER_SCALE = 1 / math.sqrt(12)  # uniform rounding error: Δ/√12 ≈ 0.289
PICK_MODES = ("first", "max")  # a heatmap cell -> its block's first or largest-error element


@dataclass(frozen=True)
class TensorView:
    """One quantized tensor exactly as its quantizer handled it.

    ``values`` is the float tensor the quantizer saw: the weight [out, in] (channels on axis
    0), the output before output fake-quant [batch, out] or the eval input [batch, in]
    (channels on the last axis). ``scale``/``zero_point``/``range_min``/``range_max`` are [C]
    (channel_wise) or [1]; ``codes`` are the integer codes of ``values``, shaped like it.
    """

    name: str
    config: QuantConfig
    values: torch.Tensor
    axis: int
    scale: torch.Tensor
    zero_point: torch.Tensor
    range_min: torch.Tensor
    range_max: torch.Tensor
    codes: torch.Tensor
    block_size: int | None = None  # block_wise: scale is [..., D/N] (weight [out, in/N])
    tensor_scale: torch.Tensor | None = None  # NVFP4's fp32 per-tensor scale (0-d)

    @property
    def num_channels(self) -> int:
        return self.scale.numel()


@dataclass(frozen=True)
class LayerAnalysis:
    """The calibrated layer and a `TensorView` per tensor (weight, output [, activation])."""

    layer: QuantLinear
    data: SampleData
    tensors: dict[str, TensorView]

    @functools.cached_property
    def weight_abs_error(self) -> torch.Tensor:
        """|dequantized - fp32| of the weight [out, in], computed once per analysis."""
        return (self.layer.dequant_weight - self.layer.weight).abs()

    @functools.cached_property
    def weight_error_cells(self) -> tuple[torch.Tensor, int, int]:
        """`weight_error_blocks`, computed once per analysis."""
        return block_reduce(self.weight_abs_error, CLICK_GRID_SIDE, "mean")


def build_analysis(configs: Mapping[str, QuantConfig | None], data: SampleData) -> LayerAnalysis:
    """Build and calibrate the layer for ``configs`` on ``data``, then `analyse_layer`."""
    return analyse_layer(build_layer(configs, data), data)


def analyse_layer(layer: QuantLinear, data: SampleData) -> LayerAnalysis:
    """Each tensor's view of a calibrated ``layer`` (the output's on ``data.eval_batch``, as the
    results' quantized forward sees it); nothing is recalibrated."""
    with torch.no_grad():
        x = data.eval_batch.float()
        x_q = x if layer.input_quantizer is None else layer.input_quantizer(x)
        output = layer.fwd_func(x_q, layer.dequant_weight, layer.bias, **layer.fwd_kwargs)
    tensors = {
        "weight": _view("weight", layer.weight_config, layer.weight, 0, layer.weight_quantizer,
                        layer.weight_observer, codes=layer.quant_weight),
        "output": _view("output", layer.out_config, output, -1, layer.output_quantizer,
                        layer.output_observer),
    }
    if layer.act_config is not None:
        tensors["activation"] = _view("activation", layer.act_config, x, -1,
                                      layer.input_quantizer, layer.input_observer)
    return LayerAnalysis(layer, data, tensors)


def _view(name, config, values, axis, quantizer, observer, codes=None) -> TensorView:
    range_min, range_max = observer.compute_range()
    with torch.no_grad():
        codes = quantizer.quant(values) if codes is None else codes
    return TensorView(name, config, values.detach(), axis, quantizer.scale, quantizer.zero_point,
                      range_min.reshape(-1), range_max.reshape(-1), codes,
                      quantizer.block_size, quantizer.tensor_scale)


# --- explain ------------------------------------------------------------------------------


def explain(analysis: LayerAnalysis, tensor: str, channel: int = 0) -> dict:
    """The formulas of ``tensor``'s method with channel ``channel``'s numbers.

    Returns `lessons.formula_lines` (``values`` and ``latex``) plus ``channel`` (clamped to
    the tensor's channels), ``num_channels``, ``observer``, ``note`` (the plain-language line
    about the observer) and ``granularity``.
    """
    view = analysis.tensors[tensor]
    channel = min(max(int(channel), 0), view.num_channels - 1)
    out = formula_lines(view.config, view.scale, view.zero_point, view.range_min,
                        view.range_max, channel)
    out.update(channel=channel, num_channels=view.num_channels,
               observer=view.config.observer_type,
               note=OBSERVER_NOTES.get(view.config.observer_type, ""),
               granularity=view.config.calibration_mode)
    return out


# --- follow one value ---------------------------------------------------------------------


def follow_weight(analysis: LayerAnalysis, row: int, col: int) -> dict:
    """Weight ``[row, col]`` through the quantizer step by step (`analysis.follow_value`).

    Adds ``row``, ``col``, ``channel`` (the scale entry used: the row when per-channel),
    ``layer_code`` / ``layer_dequantized`` (what the layer stored) and ``matches`` (True when
    the chain reproduces both exactly).
    """
    view = analysis.tensors["weight"]
    layer = analysis.layer
    rows, cols = view.values.shape
    if not (0 <= row < rows and 0 <= col < cols):
        raise IndexError(f"weight index [{row}, {col}] is outside the {rows}×{cols} weight")
    where = weight_scale_index(view, row, col)
    scale, zero = float(view.scale[where]), int(view.zero_point[where])
    tensor_scale = None if view.tensor_scale is None else float(view.tensor_scale)
    chain = QA.follow_value(float(view.values[row, col]), scale, zero, view.config.bit_type,
                            tensor_scale=tensor_scale)
    chain.update(block_trace(view, row, col))
    layer_code = int(layer.quant_weight[row, col])
    layer_dequantized = float(layer.dequant_weight[row, col])
    chain.update(row=row, col=col, channel=row if view.num_channels > 1 else 0, scale=scale,
                 zero_point=zero, layer_code=layer_code,
                 layer_dequantized=layer_dequantized,
                 matches=chain["code"] == layer_code
                 and chain["dequantized"] == layer_dequantized)
    return chain


def weight_scale_index(view: TensorView, row: int, col: int) -> tuple[int, ...]:
    """Index into the weight's ``scale`` of the entry weight ``[row, col]`` uses: (row,
    col // N) for blocks of N, (row,) per channel, (0,) per tensor."""
    if view.block_size is not None:
        return row, col // view.block_size
    return (row,) if view.num_channels > 1 else (0,)


def weight_error(analysis: LayerAnalysis) -> torch.Tensor:
    """|dequantized - fp32| of the weight [out, in]."""
    return analysis.weight_abs_error


def weight_error_blocks(analysis: LayerAnalysis) -> tuple[torch.Tensor, int, int]:
    """The clickable weight-error heatmap's cells: mean |error| per block (`figures.block_reduce`
    to at most `CLICK_GRID_SIDE` per side): ``(blocks [ceil(R/rb), ceil(C/cb)], row_block,
    col_block)``."""
    return analysis.weight_error_cells


def cell_to_weight(error: torch.Tensor, row_start: int, col_start: int, row_block: int,
                   col_block: int, mode: str = "first") -> tuple[int, int]:
    """The weight index a clicked heatmap cell stands for.

    A cell aggregates the block ``[row_start, row_start + row_block) x [col_start, col_start +
    col_block)`` of ``error`` [R, C] (clipped at the matrix edge). ``mode`` "first" picks the
    block's first element, "max" the element with the largest |error| (the first on ties).
    """
    if mode not in PICK_MODES:
        raise ValueError(f"unknown pick mode {mode!r}; valid: {', '.join(PICK_MODES)}")
    rows, cols = error.shape
    r0 = min(max(int(row_start), 0), rows - 1)
    c0 = min(max(int(col_start), 0), cols - 1)
    if mode == "first":
        return r0, c0
    block = error[r0:r0 + max(int(row_block), 1), c0:c0 + max(int(col_block), 1)].abs()
    flat = int(torch.argmax(block.reshape(-1)))
    return r0 + flat // block.shape[1], c0 + flat % block.shape[1]


# --- error decomposition and integer codes -------------------------------------------------


def decompose(analysis: LayerAnalysis, tensor: str) -> dict:
    """`analysis.error_decomposition` of ``tensor`` (the values its quantizer saw), plus
    ``scale`` [C], ``rounding_vs_theory`` (rounding MSE / mean(Δ²/12)) and ``rounding_only``
    (the RMSE/scale of pure rounding, 1/√12)."""
    view = analysis.tensors[tensor]
    out = QA.error_decomposition(view.values, view.scale, view.zero_point,
                                 view.config.bit_type, view.axis, block_size=view.block_size,
                                 tensor_scale=view.tensor_scale)
    theory = out["theoretical_rounding_mse"]
    out.update(scale=channel_scale(view),
               rounding_vs_theory=out["rounding_mse"] / theory if theory > 0 else math.nan,
               rounding_only=ROUNDING_ONLY_RMSE_OVER_SCALE)
    return out


def channel_scale(view: TensorView) -> torch.Tensor:
    """The step per channel [C] (or [1]): the scale itself, or for blocks the largest
    effective scale among each channel's blocks (NVFP4: times its tensor scale)."""
    scale = view.scale.detach().float()
    if view.tensor_scale is not None:
        scale = scale * view.tensor_scale.float()
    if view.block_size is None:
        return scale.reshape(-1).cpu()
    if view.axis == 0:
        return scale.amax(-1).reshape(-1).cpu()
    channels = view.values.shape[-1]
    per_block = scale.reshape(-1, scale.shape[-1]).amax(0)
    return per_block.repeat_interleave(view.block_size)[:channels].cpu()


def integer_codes(analysis: LayerAnalysis, tensor: str) -> dict:
    """`analysis.code_statistics` of ``tensor``'s integer codes, plus ``bits`` and
    ``codes_used`` (how many of the 2^bits codes occur)."""
    view = analysis.tensors[tensor]
    out = QA.code_statistics(view.codes, view.config.bit_type)
    bit_type = view.config.bit_type
    out.update(bits=bit_type.bits, codes_used=int((out["counts"] > 0).sum()),
               num_codes=bit_type.num_levels, is_float=bit_type.is_float)
    if bit_type.is_float:  # codes are signed grid indices: label them by element value
        out["element_values"] = signed_grid(bit_type.format)
    return out


# --- scenarios ----------------------------------------------------------------------------


def scenario_rows(result_a: PipelineResult, result_b: PipelineResult) -> list[dict]:
    """Config A vs B, one row per tensor: QSNR (dB), MSE and clip fraction of each."""
    rows = []
    for name, tensor_a in result_a.tensors.items():
        tensor_b = result_b.tensors.get(name)
        if tensor_b is None:
            continue
        stats_a, stats_b = tensor_a.statistics or {}, tensor_b.statistics or {}
        rows.append({
            "tensor": TENSOR_TITLES[name],
            "qsnr_a": stats_a.get("qsnr"), "qsnr_b": stats_b.get("qsnr"),
            "mse_a": stats_a.get("mse"), "mse_b": stats_b.get("mse"),
            "clip_a": stats_a.get("clip_fraction"), "clip_b": stats_b.get("clip_fraction"),
        })
    return rows


def select_point(selection: object, curve: int = 0) -> tuple[int, int] | None:
    """(row_start, col_start) of the first selected point of trace ``curve`` in a Plotly
    selection from ``st.plotly_chart(on_select=...)`` on a block heatmap (x = a cell's first
    column, y = its first row); None when nothing usable is selected."""
    try:
        points = selection["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    for point in points or ():
        try:
            if int(point.get("curve_number", curve)) != curve:
                continue
            return int(round(float(point["y"]))), int(round(float(point["x"])))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return None


ANALYSIS_ENTRIES = 2  # each holds a calibrated layer (weight, codes, dequantized weight)


def cached_analysis(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                    uploads: Uploads | None = None) -> LayerAnalysis:
    """The Teach tab's `LayerAnalysis` (a calibrated layer and what each quantizer saw) for
    ``configs`` on ``settings``' data, keyed like `explorer.single.results.cached_result`
    and built from its calibrated layer."""
    return store("teach.analysis", ANALYSIS_ENTRIES).get_or_put(
        result_key(configs, settings, uploads),
        lambda: analyse_layer(cached_layer(configs, settings, uploads),
                              sample_data(settings, uploads)))
