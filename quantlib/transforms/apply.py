"""One entry point: ``apply_transform`` runs a ``TransformConfig`` on one linear layer.

Order: SmoothQuant (s from the original X and W), then the Hadamard rotation Q, then the weight
algorithm on the transformed weight with the transformed calibration inputs:

    x'' = ((x / s_sq) Q) / s_awq          (``TransformResult.transform_input``)
    W'' = ((W diag(s_sq)) Q) diag(s_awq)  (``TransformResult.weight``; x'' W''^T = x W^T)
    quantized_weight = rtn / awq / gptq of W''

Steps that are off are skipped (their scale / rotation is None).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from quantlib.errors import ConfigError
from quantlib.transforms.awq import awq_search
from quantlib.transforms.config import TransformConfig
from quantlib.transforms.control import Cancel, Progress, check, report
from quantlib.transforms.gptq import gptq_quantize
from quantlib.transforms.hadamard import HadamardRotation, random_hadamard
from quantlib.transforms.smoothquant import channel_absmax, smoothquant_scales
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer


@dataclass
class TransformResult:
    """What ``apply_transform`` produced for a layer with W [out, in]:

    - ``weight`` [out, in] float32: the transformed fp32 weight W'';
    - ``quantized_weight`` [out, in] float32 (dequantized) or None without a weight format;
    - ``bias`` [out] or None: unchanged (input transforms do not touch it);
    - ``smooth_scale`` [in] / ``rotation`` / ``awq_scale`` [in]: the pieces of the input
      transform, None when off; ``transform_input`` applies them in order;
    - ``smoothquant_alpha``, ``awq_alpha`` (the chosen one), ``awq_mse`` [grid] float64;
    - ``timings``: seconds per step (``smoothquant``, ``rotation``, the weight algorithm's
      name) and ``total``.
    """

    config: TransformConfig
    weight: torch.Tensor
    quantized_weight: torch.Tensor | None
    bias: torch.Tensor | None
    smooth_scale: torch.Tensor | None = None
    rotation: HadamardRotation | None = None
    awq_scale: torch.Tensor | None = None
    smoothquant_alpha: float | None = None
    awq_alpha: float | None = None
    awq_mse: torch.Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> x'' [..., in] float32, the input the transformed weight expects."""
        y = x.float()
        if self.smooth_scale is not None:
            y = y / self.smooth_scale
        if self.rotation is not None:
            y = self.rotation.apply(y)
        if self.awq_scale is not None:
            y = y / self.awq_scale
        return y

    def output(self, x: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        """The layer's output [..., out] for x [..., in]: transformed input times the quantized
        weight (``quantized`` and available) or the fp32 transformed weight, plus the bias."""
        w = self.quantized_weight if quantized and self.quantized_weight is not None \
            else self.weight
        y = self.transform_input(x) @ w.T
        return y if self.bias is None else y + self.bias.float()


def apply_transform(weight: torch.Tensor, bias: torch.Tensor | None, calib_x: torch.Tensor,
                    config: TransformConfig, weight_format: WeightFormat | None = None, *,
                    progress: Progress | None = None, cancel: Cancel | None = None,
                    layer_name: str = "layer") -> TransformResult:
    """Transform one linear layer y = x W^T + b.

    - ``weight`` [out, in], ``bias`` [out] or None, ``calib_x`` [..., in] (>= 1 token);
    - ``config``: a ``TransformConfig``; ``weight_format``: how the weight is quantized
      (needed by awq/gptq; with rtn it gives ``quantized_weight``, None leaves it None);
    - ``progress``/``cancel``: see ``quantlib.transforms.control`` (progress ends at 1.0;
      cancellation raises ``TransformCancelled``).

    Raises ValueError naming ``layer_name`` and the tensor for non-finite or mis-shaped input,
    ConfigError when the weight algorithm needs a weight format and none is given, ValueError
    when the rotation has no Hadamard matrix of size ``in``.
    """
    if not isinstance(config, TransformConfig):
        raise TypeError(f"config must be a TransformConfig, got {type(config).__name__}")
    w, b, x = _checked(weight, bias, calib_x, layer_name)
    algorithm = config.weight_algorithm
    if algorithm != "rtn" and weight_format is None:
        raise ConfigError(f"{algorithm} needs a quantized weight format (e.g. int4 block-wise "
                          "or nvfp4); the weight is not quantized", "transform.weight_algorithm")
    start = time.perf_counter()
    timings: dict[str, float] = {}
    result = TransformResult(config, w, None, b)
    check(cancel, "transform", 0.0)

    if config.smoothquant is not None:
        t0 = time.perf_counter()
        alpha = config.smoothquant.alpha
        s = smoothquant_scales(channel_absmax(x), channel_absmax(w), alpha)
        w, x = w * s, x / s
        result.smooth_scale, result.smoothquant_alpha = s, alpha
        timings["smoothquant"] = time.perf_counter() - t0
    if config.rotation == "hadamard":
        t0 = time.perf_counter()
        rotation = random_hadamard(w.shape[1], config.seed)
        w, x = rotation.apply(w), rotation.apply(x)
        result.rotation = rotation
        timings["rotation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if algorithm == "awq":
        found = awq_search(w, x, weight_format, grid=config.awq.grid, progress=progress,
                           cancel=cancel)
        w = w * found.scales
        result.awq_scale, result.awq_alpha, result.awq_mse = (found.scales, found.alpha,
                                                              found.mse)
        result.quantized_weight = found.quantized_weight
    elif algorithm == "gptq":
        gptq = config.gptq
        result.quantized_weight = gptq_quantize(w, x, weight_format, damp=gptq.damp,
                                                block=gptq.block, act_order=gptq.act_order,
                                                progress=progress, cancel=cancel)
    elif weight_format is not None:
        result.quantized_weight = WeightQuantizer(weight_format, w).quantize_all(w)
    timings[algorithm] = time.perf_counter() - t0
    result.weight = w
    timings["total"] = time.perf_counter() - start
    result.timings = timings
    report(progress, 1.0)
    return result


def _checked(weight: torch.Tensor, bias: torch.Tensor | None, calib_x: torch.Tensor,
             layer: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """float32 copies of the inputs, calib_x flattened to [tokens, in]; ValueError otherwise."""
    for name, t in (("weight", weight), ("calibration input", calib_x), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{layer}: the {name} must be a floating-point tensor, got "
                             f"{getattr(t, 'dtype', type(t).__name__)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{layer}: the {name} contains NaN or Inf")
    if weight.dim() != 2:
        raise ValueError(f"{layer}: the weight must be 2-D [out, in], got shape "
                         f"{tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if calib_x.dim() == 0 or calib_x.shape[-1] != in_features or calib_x.numel() == 0:
        raise ValueError(f"{layer}: the calibration input must be [..., {in_features}] with at "
                         f"least one token, got shape {tuple(calib_x.shape)}")
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise ValueError(f"{layer}: the bias must have shape ({out_features},), got "
                         f"{tuple(bias.shape)}")
    x = calib_x.detach().float().reshape(-1, in_features)
    b = None if bias is None else bias.detach().float()
    return weight.detach().float().clone(), b, x
