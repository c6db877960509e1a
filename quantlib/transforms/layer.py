"""Transforms on a `quantlib.quant_linear.QuantLinear` (``layer.transform`` / ``apply_transform``).

- `weight_format_of(weight_config)`: the `WeightFormat` a layer's weight ``QuantConfig`` names
  (what AWQ and GPTQ quantize onto);
- `transform_layer(layer, calib_x, config)`: run `apply_transform` on the layer's weight;
- `install_transform(layer, result)`: make the layer compute with the transformed weight W''
  and transformed inputs x'' (``QuantLinear.apply_transform`` calls it).

This module never imports ``quant_linear`` (the layer is passed in), so there is no cycle.
"""

from __future__ import annotations

import torch

from quantlib.errors import ConfigError
from quantlib.quant_config import QuantConfig
from quantlib.transforms.apply import TransformResult, apply_transform
from quantlib.transforms.config import TransformConfig
from quantlib.transforms.control import Cancel, Progress
from quantlib.transforms.weight_quant import WeightFormat


def weight_format_of(weight_config: QuantConfig) -> WeightFormat:
    """The weight format of a weight ``QuantConfig``: ``bit_type`` (its format name; integer
    labels by bits/signed), ``calibration_mode`` (layer_wise -> tensor, channel_wise ->
    channel, block_wise -> block of ``block_size``) and ``quantization_method``. Raises
    ConfigError (path ``weight...``) when the combination is not a weight format."""
    bit_type = weight_config.bit_type
    name = bit_type.name if bit_type.is_float else bit_type.default_name
    try:
        return WeightFormat.from_quant_settings(
            name, weight_config.calibration_mode, weight_config.block_size,
            weight_config.quantization_method)
    except ConfigError as err:
        raise ConfigError(f"the transform's weight algorithm cannot use this weight config: "
                          f"{err.reason}", f"weight.{err.path}".rstrip(".")) from None


def transform_layer(layer, calib_x: torch.Tensor, config: TransformConfig, *,
                    progress: Progress | None = None, cancel: Cancel | None = None
                    ) -> TransformResult:
    """`apply_transform` on ``layer``'s (original) weight and bias with ``calib_x`` [..., in],
    in the layer's weight format when the weight algorithm needs one (awq, gptq); the result
    is not installed (see `install_transform`)."""
    weight = layer.weight if layer.original_weight is None else layer.original_weight
    fmt = None if config.weight_algorithm == "rtn" else weight_format_of(layer.weight_config)
    return apply_transform(weight, layer.bias, calib_x, config, fmt, progress=progress,
                           cancel=cancel, layer_name=layer.layer_name)


def install_transform(layer, result: TransformResult) -> None:
    """Install ``result`` on an uncalibrated ``layer`` (see ``QuantLinear.apply_transform``)."""
    if not isinstance(result, TransformResult):
        raise TypeError(f"{layer.layer_name}: expected a TransformResult, got "
                        f"{type(result).__name__}")
    if layer.transform_result is not None:
        raise RuntimeError(f"{layer.layer_name}: a transform is already installed; build a "
                           "new QuantLinear from the original nn.Linear to change it")
    if layer.output_observer.num_observed:
        raise RuntimeError(f"{layer.layer_name}: install the transform before calibration "
                           "(the input observer must see the transformed inputs)")
    if tuple(result.weight.shape) != (layer.out_features, layer.in_features):
        raise ValueError(f"{layer.layer_name}: the transformed weight has shape "
                         f"{tuple(result.weight.shape)}, the layer "
                         f"{(layer.out_features, layer.in_features)}")
    device = layer.weight.device
    with torch.no_grad():
        layer.original_weight = layer.weight
        layer.weight = result.weight.detach().float().to(device).clone()
        layer.transform_result = result
        layer.quantize_weight()  # the layer's own observer and grid on W'' (RTN)
        if result.config.weight_algorithm != "rtn" and result.quantized_weight is not None:
            layer.dequant_weight = result.quantized_weight.detach().float().to(device).clone()
            if layer.weight_profiler is not None:
                layer.weight_profiler.reset()
                layer.profile_weight()
