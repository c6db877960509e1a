"""Pure pipeline: configs + sample data -> everything the explorer draws.

No Streamlit here. `run_pipeline` builds a `QuantLinear` on a layer's `SampleData` (made by
`explorer.data.sources.make_sample_data`), calibrates it
(reporting progress through a callback), computes the qparams, runs one quantized forward on a
held-out evaluation batch and collects small, bounded results: statistics, server-side
histograms, block-aggregated error maps, per-channel clip ranges and timings. `build_figures`
turns a `PipelineResult` into Plotly figures. A compare view (several configs on the same data)
makes the data once and calls `run_pipeline(configs, data)` per config.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.blocks import MAX_HEATMAP_SIDE, block_reduce, channel_clip_range
from explorer.core.cache import BoundedLRU
from explorer.core.channel_figures import make_per_channel_figure
from explorer.core.figures import (
    make_block_heatmap,
    make_histogram_figure,
    make_memory_figure,
    make_scale_heatmap,
    make_timing_figure,
)
from explorer.core.transform_step import install_layer_transform
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

TENSORS = ("weight", "output", "activation")  # the loader's result keys
TENSOR_TITLES = {"weight": "Weight", "output": "Output", "activation": "Input activation"}
LEVEL_GRID_MAX_BITS = 6
LAYER_NAME = "explorer.linear"

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class DataSettings:
    """What sample data to build: layer shape, seed, weight/input distributions, batches.

    ``source`` (`explorer.data.sources.SOURCES`) picks synthetic tensors or a real layer:
    ``model_layer`` of the trained digits MLP (``seed`` is its training seed), the uploaded
    tensor ``upload_tensor`` of the file with SHA-256 ``upload_weight`` (optional calibration
    inputs: ``upload_inputs``), or MiniLM's ``minilm_layer``. A real layer fixes the shape.
    """

    in_features: int = 768
    out_features: int = 768
    seed: int = 0
    weight_source: str = "Kaiming init"
    input_source: str = "Gaussian"
    num_batches: int = 8
    batch_size: int = 256
    source: str = "synthetic"
    model_layer: str = "fc1"
    minilm_layer: str = "encoder.layer.0.attention.self.query"
    upload_weight: str = ""
    upload_tensor: str = ""
    upload_inputs: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


CALIBRATION_ENTRIES = 4  # calibrated output/input observers kept per data set


@dataclass(frozen=True)
class SampleData:
    """A layer's data: ``weight`` [out, in], ``bias`` [out], ``calibration`` (batches
    [rows, in]) and a held-out ``eval_batch`` [rows, in]; for a real source ``settings``
    carry the layer's real shape (built by `explorer.data.sources.make_sample_data`).

    ``calibrations`` memoises `build_layer`'s calibration on this data: calibration is an fp32
    forward, so the output (and input) observers depend only on the output and activation
    configs and on the data, never on the weight config. A weight edit reuses them.
    """

    settings: DataSettings
    weight: torch.Tensor
    bias: torch.Tensor
    calibration: tuple[torch.Tensor, ...]
    eval_batch: torch.Tensor
    calibrations: BoundedLRU = field(default_factory=lambda: BoundedLRU(CALIBRATION_ENTRIES),
                                     compare=False, repr=False)


@dataclass(frozen=True)
class CalibrationSnapshot:
    """The calibrated output and input observers of a layer and the qparams they gave."""

    output_observer: object
    output_qparams: tuple[torch.Tensor, torch.Tensor]
    input_observer: object | None
    input_qparams: tuple[torch.Tensor, torch.Tensor] | None

    @classmethod
    def of(cls, layer: QuantLinear) -> CalibrationSnapshot:
        """The layer's calibrated observers themselves (calibration is over; nothing updates
        them again) and copies of their qparams; `install` gives each layer its own copies."""
        with_input = layer.input_observer is not None
        return cls(layer.output_observer,
                   (layer.output_scaler.clone(), layer.output_zero.clone()),
                   layer.input_observer,
                   (layer.input_scaler.clone(), layer.input_zero.clone()) if with_input else None)

    def install(self, layer: QuantLinear) -> None:
        """Give ``layer`` copies of these observers and their qparams (as if calibrated)."""
        layer.output_observer = copy.deepcopy(self.output_observer)
        layer.output_quantizer.update_quantization_params(*(t.clone() for t in
                                                             self.output_qparams))
        if self.input_observer is not None:
            layer.input_observer = copy.deepcopy(self.input_observer)
            layer.input_quantizer.update_quantization_params(*(t.clone() for t in
                                                                self.input_qparams))


@dataclass(frozen=True)
class ErrorMap:
    """``mean |error|`` over blocks of ``row_block`` x ``col_block`` of a ``shape`` matrix;
    ``blocks`` is [ceil(R/row_block), ceil(C/col_block)], at most 256 x 256."""

    blocks: torch.Tensor
    row_block: int
    col_block: int
    shape: tuple[int, int]
    row_label: str
    col_label: str


@dataclass(frozen=True)
class TensorResult:
    """One quantized tensor (weight, output or input activation).

    ``scale``/``zero_point`` are [C] (channel_wise) or [1]; ``clip_lo``/``clip_hi`` are the
    representable range expanded to [C] channels (out for weight/output, in for activation).
    For block_wise the clip range of a channel is the widest over its blocks.
    ``statistics``/``histogram`` are the profiler's (None when ``enable_profiler`` is false);
    ``levels`` [num_levels] is the dequantized grid of scale ``level_channel`` (the widest
    channel or block; ``Quantizer.levels``: element_levels x that scale), kept for integers of
    <= 6 bits and for every float format (its non-uniform grid). ``block_scales`` (block_wise
    only) is the effective scale of each block ([out, in/N] for the weight, [samples, D/N]
    for outputs and inputs), mean-aggregated to at most 256 x 256 cells.
    """

    name: str
    config: QuantConfig
    scale: torch.Tensor
    zero_point: torch.Tensor
    clip_lo: torch.Tensor
    clip_hi: torch.Tensor
    statistics: dict | None
    histogram: dict | None
    error_map: ErrorMap
    levels: torch.Tensor | None
    level_channel: int | None
    time_ms: dict[str, float]
    memory: dict[str, float]
    block_scales: ErrorMap | None = None


@dataclass(frozen=True)
class PipelineResult:
    """Everything the panels draw for one config on one data set; all fields are small."""

    settings: DataSettings
    tensors: dict[str, TensorResult]
    stage_ms: dict[str, float] = field(default_factory=dict)


def run_pipeline(
    configs: Mapping[str, QuantConfig | None],
    data: SampleData,
    progress: ProgressCallback | None = None,
    on_layer: Callable[[QuantLinear], None] | None = None,
) -> PipelineResult:
    """Build, calibrate, quantize and profile one QuantLinear on ``data``.

    ``configs`` is the loader's ``{'weight', 'output', 'activation'}`` (activation may be None
    or absent); ``data`` comes from `explorer.data.sources.make_sample_data` (or its cache).
    ``progress(fraction, text)`` is called as calibration proceeds (fraction in [0, 1]).
    ``on_layer(layer)`` gets the calibrated layer (qparams computed, before the profiled
    forward), so a caller can keep it instead of calibrating again; do not run it through
    ``run_pipeline`` again.
    """
    report = progress or (lambda fraction, text: None)
    stage_ms: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stage_ms[stage] = (now - clock) * 1e3
        clock = now

    settings = data.settings  # a real source's data carries the layer's real shape
    act_config = configs.get("activation")
    layer = build_layer(configs, data, report)
    if on_layer is not None:
        on_layer(layer)
    lap("build, calibrate, qparams")
    with torch.no_grad():
        layer.keep_fp32_output = True  # the profiler's reference, reused for the error map
        quantized_output = layer(data.eval_batch)
        fp32_output = layer.last_fp32_output
        if fp32_output is None:  # output profiling is off
            fp32_output = F.linear(data.eval_batch, layer.weight, layer.bias)
        layer.last_fp32_output = None
    lap("quantized forward")
    profiles = layer.get_profiling_results()
    tensors = {
        "weight": _tensor_result(
            "weight", layer.weight_config, layer.weight_quantizer, profiles.get("weight"),
            layer.dequant_weight - layer.weight, ("output channel", "input feature"),
            settings.out_features),
        "output": _tensor_result(
            "output", layer.out_config, layer.output_quantizer, profiles.get("output"),
            quantized_output - fp32_output, ("eval sample", "output channel"),
            settings.out_features),
    }
    if act_config is not None:
        with torch.no_grad():
            input_error = layer.input_quantizer(data.eval_batch) - data.eval_batch
        tensors["activation"] = _tensor_result(
            "activation", act_config, layer.input_quantizer, profiles.get("activation"),
            input_error, ("eval sample", "input feature"), settings.in_features)
    lap("collect results")
    report(1.0, "Done")
    return PipelineResult(settings, tensors, stage_ms)


def build_layer(configs: Mapping[str, QuantConfig | None], data: SampleData,
                progress: ProgressCallback | None = None) -> QuantLinear:
    """The QuantLinear for ``data``'s weight, calibrated on its batches, with qparams computed
    and ``mode = "quantized"``; no quantized forward has run yet. When an earlier build on this
    ``data`` had the same output and activation configs, its calibrated observers and qparams
    are copied in (`SampleData.calibrations`) instead of calibrating again."""
    report = progress or (lambda fraction, text: None)
    settings = data.settings
    # No random init and no copy: QuantLinear takes its own copy of the weight.
    linear = nn.utils.skip_init(nn.Linear, settings.in_features, settings.out_features)
    linear.weight = nn.Parameter(data.weight, requires_grad=False)
    linear.bias = nn.Parameter(data.bias, requires_grad=False)
    weight_config = configs["weight"]
    report(0.0, f"Quantizing the weight ({weight_config.observer_type}, "
                f"{weight_config.calibration_mode})")
    layer = QuantLinear(linear, out_config=configs["output"], weight_config=weight_config,
                        layer_name=LAYER_NAME, act_config=configs.get("activation"))
    transform = configs.get("transform")  # the YAML's transform: section (issue 17)
    if transform is not None:  # SmoothQuant / rotation / AWQ / GPTQ, before calibrating
        install_layer_transform(layer, transform, data.calibration,
                                lambda f, text: report(0.0, text))
    calibration_key = config_key({"output": configs["output"],
                                  "activation": configs.get("activation"),
                                  "transform": transform})
    snapshot = data.calibrations.get(calibration_key)
    if snapshot is not None:  # same output/activation configs on this data: reuse
        snapshot.install(layer)
    else:
        total = len(data.calibration)
        for index, batch in enumerate(data.calibration):
            report(index / (total + 1), f"Calibrating batch {index + 1}/{total}")
            layer.calibration(batch)
        report(total / (total + 1),
               f"Computing output qparams ({configs['output'].observer_type}) and evaluating")
        layer.compute_output_quant_params()
        data.calibrations.put(calibration_key, CalibrationSnapshot.of(layer))
    layer.mode = "quantized"
    return layer


# Figures a FigureSet builds on request but does not list (variants of listed ones).
VARIANT_SUFFIXES = ("_error_log", "_channels_sorted")


class FigureSet(Mapping):
    """A result's Plotly figures by key, each built on first access and then kept.

    Keys: ``<tensor>_histogram`` (profiled tensors only), ``<tensor>_error``,
    ``<tensor>_channels`` (per-channel profiles only), ``timing`` and ``memory``; the variant
    ``<tensor>_error_log`` (log colour scale) and ``<tensor>_channels_sorted`` (worst channel
    first) can be asked for too, but are not listed. Building a
    figure costs 10-60 ms of Plotly validation, and a page shows only some of them, so the
    result cache holds a `FigureSet` and a panel pays only for what it draws. Thread-safe.
    """

    def __init__(self, result: PipelineResult) -> None:
        self.result = result
        self._builders: dict[str, Callable[[], go.Figure]] = _figure_builders(result)
        self._keys = [k for k in self._builders if not k.endswith(VARIANT_SUFFIXES)]
        self._built: dict[str, go.Figure] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> go.Figure:
        with self._lock:
            if key not in self._built:
                self._built[key] = self._builders[key]()
            return self._built[key]

    def __contains__(self, key: object) -> bool:
        return key in self._builders

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def build_figures(result: PipelineResult) -> FigureSet:
    """The figures of a result (`FigureSet`: built lazily, on first access)."""
    return FigureSet(result)


def _figure_builders(result: PipelineResult) -> dict[str, Callable[[], go.Figure]]:
    builders: dict[str, Callable[[], go.Figure]] = {}
    for name, tensor in result.tensors.items():
        title = TENSOR_TITLES[name]
        bits = tensor.config.bit_type.name
        if tensor.histogram is not None:
            builders[f"{name}_histogram"] = functools.partial(
                make_histogram_figure, tensor.histogram,
                f"{title} values: fp32 vs dequantized", levels=tensor.levels,
                log_y=True, subtitle=bits)
        error = tensor.error_map
        for suffix, log_color in (("_error", False), ("_error_log", True)):
            builders[name + suffix] = functools.partial(
                make_block_heatmap, error.blocks, error.row_block, error.col_block, error.shape,
                f"{title} quantization error", error.row_label, error.col_label,
                log_color=log_color)
        scales = tensor.block_scales
        if scales is not None:
            builders[f"{name}_scales"] = functools.partial(
                make_scale_heatmap, scales.blocks, scales.row_block, scales.col_block,
                scales.shape, f"{title} block scales ({tensor.config.block_size} values each)",
                scales.row_label, scales.col_label)
        qsnr = None if tensor.statistics is None else tensor.statistics["per_channel_qsnr"]
        if qsnr is not None and qsnr.numel() == tensor.clip_lo.numel():
            for suffix, order in (("_channels", "index"), ("_channels_sorted", "qsnr")):
                builders[name + suffix] = functools.partial(
                    make_per_channel_figure, qsnr, tensor.clip_lo, tensor.clip_hi,
                    f"{title}: per-channel QSNR and clip range", order=order)
    timing = {TENSOR_TITLES[n]: {_stage_label(stage): ms for stage, ms in t.time_ms.items()}
              for n, t in result.tensors.items() if t.time_ms}
    timing["explorer pipeline"] = result.stage_ms
    builders["timing"] = functools.partial(make_timing_figure, timing)
    builders["memory"] = functools.partial(make_memory_figure, {
        TENSOR_TITLES[n]: t.memory for n, t in result.tensors.items() if t.memory})
    return builders


def config_key(configs: Mapping[str, QuantConfig | None]) -> tuple:
    """A hashable key for a set of configs: their field values (a validated config holds no
    NaN, so equal values mean equal keys); a ``transform`` adds its values."""
    key = tuple((name, None if configs.get(name) is None else dataclasses.astuple(configs[name]))
                for name in TENSORS)
    transform = configs.get("transform")
    return key if transform is None else (*key, ("transform", dataclasses.astuple(transform)))


def _tensor_result(name, config, quantizer, profile, error, labels, channels) -> TensorResult:
    scale, zero_point = quantizer.scale.clone(), quantizer.zero_point.clone()
    clip_lo, clip_hi = channel_clip_range(quantizer, name == "weight", channels)
    levels = level_channel = None
    if config.bit_type.is_float or config.bit_type.bits <= LEVEL_GRID_MAX_BITS:
        level_channel = int(quantizer.effective_scale().reshape(-1).argmax())
        levels = quantizer.levels(level_channel)
    blocks, row_block, col_block = block_reduce(_as_2d(error), MAX_HEATMAP_SIDE, "mean")
    error_map = ErrorMap(blocks, row_block, col_block, tuple(_as_2d(error).shape), *labels)
    block_scales = None
    if quantizer.block_size is not None:
        unit = _as_2d(quantizer.effective_scale().detach().float())
        cells, rows_per, cols_per = block_reduce(unit, MAX_HEATMAP_SIDE, "mean")
        block_scales = ErrorMap(cells, rows_per, cols_per, tuple(unit.shape), labels[0],
                                f"{labels[1]} block")
    profile = profile or {}
    return TensorResult(
        name=name, config=config, scale=scale, zero_point=zero_point,
        clip_lo=clip_lo, clip_hi=clip_hi,
        statistics=profile.get("statistics"), histogram=profile.get("histogram"),
        error_map=error_map, levels=levels, level_channel=level_channel,
        time_ms=dict(profile.get("time", {})), memory=dict(profile.get("memory", {})),
        block_scales=block_scales,
    )


def _stage_label(stage: str) -> str:
    """``calibration_ms`` -> ``calibration``: the axis already says ms."""
    return stage.removesuffix("_ms").replace("_", " ")


def _as_2d(error: torch.Tensor) -> torch.Tensor:
    return error.reshape(-1, error.shape[-1]) if error.dim() != 2 else error
