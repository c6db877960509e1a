"""The transform panel's numbers (pure; no Streamlit): the difficulty-migration picture, the
SmoothQuant alpha curve and the before/after metrics, for one layer's `SampleData`.

- `preview(data, configs, transform)`: `apply_transform` on the layer (GPTQ is swapped for
  RTN here: it does not move ranges between x and W, and the panel runs it on demand);
- `migration_of(data, result)`: per input channel j, max|x_j| and max_i |W_ij| before and
  after the transform (the ranges SmoothQuant trades between activation and weight);
- `alpha_curve(data, configs)`: output QSNR vs alpha (21 points) with the weight quantized
  as the weight config says and the input as the activation config says (int8 per tensor
  when there is none: SmoothQuant is about W8A8). The curve uses at most `CURVE_TOKENS`
  evenly spaced calibration rows: each point is one quantization of W and x and one
  [tokens, in] x [in, out] matmul, so 512 rows keep 21 points on a 768x768 layer well under
  a second on two cores, while the curve's shape (and the best alpha) is that of all rows;
- `metric_rows(before, after)`: the results' output/weight QSNR and MSE side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import torch

from explorer.core.cache import store
from explorer.core.pipeline import PipelineResult, SampleData, config_key
from explorer.core.transform_step import calibration_tokens
from quantlib.bit_type import BitType
from quantlib.quant_config import QuantConfig
from quantlib.transforms import (
    TransformConfig,
    TransformResult,
    WeightQuantizer,
    apply_transform,
    smoothquant_alpha_curve,
)
from quantlib.transforms.layer import weight_format_of
from quantlib.transforms.smoothquant import channel_absmax

CURVE_TOKENS = 512
PREVIEW_TOKENS = 2048
CURVE_POINTS = 21
DEFAULT_ACT = QuantConfig(calibration_mode="layer_wise", bit_type=BitType(8, True, "int8"))


@dataclasses.dataclass(frozen=True)
class Migration:
    """Per input channel [in] float32: activation max|x_j| and weight max_i |W_ij|, before and
    after the transform (after: of x'' and W'')."""

    act_before: torch.Tensor
    act_after: torch.Tensor
    weight_before: torch.Tensor
    weight_after: torch.Tensor


def data_key(data: SampleData) -> tuple:
    return data.settings, id(data.weight)


def preview(data: SampleData, configs: Mapping, transform: TransformConfig) -> TransformResult:
    """`apply_transform` of ``transform`` (GPTQ -> RTN) on ``data``'s layer, cached."""
    config = transform if transform.weight_algorithm != "gptq" else dataclasses.replace(
        transform, weight_algorithm="rtn")
    key = ("preview", data_key(data), config_key(configs), dataclasses.astuple(config))

    def compute() -> TransformResult:
        fmt = None if config.weight_algorithm == "rtn" else weight_format_of(configs["weight"])
        return apply_transform(data.weight, data.bias, calibration_tokens(
            data.calibration, PREVIEW_TOKENS), config, fmt)

    return store("transform.analysis", 8).get_or_put(key, compute)


def migration_of(data: SampleData, result: TransformResult) -> Migration:
    x = calibration_tokens(data.calibration, PREVIEW_TOKENS)
    return Migration(channel_absmax(x), channel_absmax(result.transform_input(x)),
                     channel_absmax(data.weight), channel_absmax(result.weight))


def quantizer_of(config: QuantConfig, axis_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """RTN fake quantization by a QuantConfig's format and granularity, min-max scales.
    ``axis_last``: channel_wise means one scale per column (activations [tokens, in]), else
    per row (weights [out, in]); block-wise blocks run along the last axis either way."""
    fmt = weight_format_of(config)

    def quantize(t: torch.Tensor) -> torch.Tensor:
        if fmt.granularity == "channel" and axis_last:
            return WeightQuantizer(fmt, t.T).quantize_all(t.T).T
        return WeightQuantizer(fmt, t).quantize_all(t)

    return quantize


def alpha_curve(data: SampleData, configs: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas [21], output QSNR in dB [21]) of SmoothQuant on ``data``'s layer, cached."""
    act = configs.get("activation") or DEFAULT_ACT
    key = ("curve", data_key(data), dataclasses.astuple(configs["weight"]),
           dataclasses.astuple(act))

    def compute():
        x = calibration_tokens(data.calibration, CURVE_TOKENS)
        return smoothquant_alpha_curve(data.weight, x, quantizer_of(configs["weight"], False),
                                       quantizer_of(act, True), torch.linspace(0, 1, CURVE_POINTS),
                                       bias=data.bias)

    return store("transform.analysis", 8).get_or_put(key, compute)


def metric_rows(before: PipelineResult, after: PipelineResult) -> list[dict]:
    """Rows ``{metric, before, after, change}`` for the output and weight statistics."""
    rows = []
    for tensor, label in (("output", "Output"), ("weight", "Weight")):
        b, a = before.tensors[tensor].statistics, after.tensors[tensor].statistics
        if b is None or a is None:
            continue
        for stat, unit in (("qsnr", "dB"), ("mse", "")):
            rows.append({"metric": f"{label} {stat.upper()}" + (f" ({unit})" if unit else ""),
                         "before": float(b[stat]), "after": float(a[stat]),
                         "change": float(a[stat]) - float(b[stat])})
    return rows
