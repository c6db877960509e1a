"""`QuantLinear`: a Linear layer with a fake-quantized weight, output and (optionally) input.

Usage (the seed's)::

    layer = QuantLinear(nn.Linear(768, 768), out_config=cfg["output"],
                        weight_config=cfg["weight"], layer_name="attn.qkv")  # weight quantized
    for x in calib_data:
        layer.calibration(x)                     # fp32 forward; observes the output (and input)
    (w_scale, w_zero), (o_scale, o_zero) = layer.compute_output_quant_params()
    layer.mode = "quantized"
    y = layer(x)                                 # dequant weight -> linear -> output fake-quant
    layer.get_profiling_results()["output"]["statistics"]["qsnr"]

Outlier mitigation (``quantlib.transforms``), before calibration::

    layer.transform(calib_x, TransformConfig(rotation="hadamard", weight_algorithm="gptq"))

Run ``python -m quantlib.quant_linear`` for the self-test.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from quantlib.errors import ConfigError
from quantlib.observers import build_observer
from quantlib.observers.base import check_block_size
from quantlib.profiler import QuantProfiler, memory_report
from quantlib.quant_config import QuantConfig
from quantlib.quantizers import Quantizer
from quantlib.transforms.apply import TransformResult
from quantlib.transforms.config import TransformConfig
from quantlib.transforms.control import Cancel, Progress
from quantlib.transforms.layer import install_transform, transform_layer

MODES = ("fp32", "quantized")


class QuantLinear(nn.Module):
    """Post-training quantization of one ``nn.Linear``.

    Tensors and their qparams:
    - ``weight`` [out, in] fp32, ``quant_weight`` [out, in] int32 codes (float formats: signed
      grid indices, see `quantlib.formats.grid`), ``weight_scaler`` / ``weight_zero`` [out]
      (channel_wise), [1] (layer_wise) or [out, in/N] (block_wise; NVFP4: the E4M3 block
      scales, with the FP32 per-tensor scale in ``weight_tensor_scale``);
    - output [..., out]: ``output_scaler`` / ``output_zero`` [out] or [1]; block_wise scales
      are dynamic, from each output's own blocks ([..., out/N] of the last forward);
    - input [..., in] (only with ``act_config``): ``input_scaler`` / ``input_zero`` [in] or
      [1]; block_wise as the output.

    With a transform installed (`transform` / `apply_transform`, before calibration):
    ``weight`` is the transformed W'' [out, in], ``original_weight`` the layer's own W, and
    every input x (calibration, fp32 and quantized forward) becomes x'' =
    ``transform_result.transform_input(x)``, so the fp32 output is unchanged up to rounding.
    The input observer, quantizer and profiler see x''. The output profiler's reference is the
    original layer's fp32 output, x W^T + b.
    """

    def __init__(self, input_module: nn.Module, out_config: QuantConfig,
                 weight_config: QuantConfig, layer_name: str = "qlinear",
                 act_config: QuantConfig | None = None) -> None:
        super().__init__()
        if not isinstance(input_module, nn.Linear):  # e.g. nn.Embedding also has a 2-D weight
            raise TypeError(f"{layer_name}: input_module must be an nn.Linear, got "
                            f"{type(input_module).__name__}")
        if type(input_module).forward is not nn.Linear.forward:
            raise TypeError(f"{layer_name}: {type(input_module).__name__} overrides forward(); "
                            "QuantLinear computes F.linear(x, weight, bias) and would ignore it")
        weight = getattr(input_module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.numel() == 0:
            raise ValueError(f"{layer_name}: input_module needs a non-empty 2-D weight [out, in] "
                             f"(an nn.Linear); got {type(input_module).__name__}"
                             + (f" with weight {tuple(weight.shape)}"
                                if isinstance(weight, torch.Tensor) else ""))
        for name, cfg in (("out_config", out_config), ("weight_config", weight_config),
                          ("act_config", act_config)):
            if cfg is not None and not isinstance(cfg, QuantConfig):
                raise TypeError(f"{layer_name}: {name} must be a QuantConfig, "
                                f"got {type(cfg).__name__}")
        self.layer_name = layer_name
        self.out_features, self.in_features = weight.shape
        bias = getattr(input_module, "bias", None)
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        _check_finite(self.weight, layer_name, "weight")
        if self.bias is not None:
            _check_finite(self.bias, layer_name, "bias")
        self.fwd_func = F.linear
        self.fwd_kwargs: dict = {}
        # Opt-in: keep the fp32 reference the profiler computes in a quantized forward, so a
        # caller that also needs it (error maps) does not run the fp32 linear again.
        self.keep_fp32_output = False
        self.last_fp32_output: torch.Tensor | None = None
        self._mode = "fp32"

        self.weight_config, self.out_config, self.act_config = weight_config, out_config, act_config
        for what, cfg, dim in (("weight", weight_config, self.in_features),
                               ("output", out_config, self.out_features),
                               ("input", act_config, self.in_features)):
            if cfg is not None and cfg.is_block_wise:
                try:
                    check_block_size(cfg.block_size, dim, f"{what}'s last")
                except ConfigError as err:
                    raise ConfigError(f"{layer_name}: {err.reason}", err.path) from None
        # Weights: one observed range per block. Activations with block_wise: one range per
        # tensor (NVFP4's tensor scale); their block scales come from each tensor in forward.
        self.weight_observer = build_observer(weight_config, 0, f"{layer_name}.weight")
        self.output_observer = build_observer(out_config, -1, f"{layer_name}.output",
                                              per_tensor=out_config.is_block_wise)
        self.input_observer = (None if act_config is None
                               else build_observer(act_config, -1, f"{layer_name}.input",
                                                   per_tensor=act_config.is_block_wise))
        self.weight_quantizer = Quantizer.from_config(weight_config, channel_axis=0)
        self.output_quantizer = Quantizer.from_config(out_config, -1, dynamic=True)
        self.input_quantizer = (None if act_config is None
                                else Quantizer.from_config(act_config, -1, dynamic=True))
        self.weight_profiler = _make_profiler(weight_config, f"{layer_name}.weight", 0)
        self.output_profiler = _make_profiler(out_config, f"{layer_name}.output", -1)
        self.input_profiler = _make_profiler(act_config, f"{layer_name}.input", -1)
        self.enable_profiling = any(p is not None for p in self._profilers().values())

        self.transform_result: TransformResult | None = None
        self.register_buffer("original_weight", None, persistent=False)
        self.register_buffer("quant_weight", None)
        self.register_buffer("dequant_weight", None, persistent=False)
        self.register_load_state_dict_post_hook(_refresh_after_load)
        self.quantize_weight()

    # --- mode ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(
                f"{self.layer_name}: unknown mode {value!r}; use 'fp32' or 'quantized'")
        self._mode = value

    # --- the seed's qparam attributes: the quantizers' buffers, so they follow .to() ------

    @property
    def weight_scaler(self) -> torch.Tensor | None:
        return self.weight_quantizer.scale

    @property
    def weight_zero(self) -> torch.Tensor | None:
        return self.weight_quantizer.zero_point

    @property
    def weight_tensor_scale(self) -> torch.Tensor | None:
        """NVFP4's per-tensor FP32 weight scale (0-d); None for other formats."""
        return self.weight_quantizer.tensor_scale

    @property
    def output_scaler(self) -> torch.Tensor | None:
        return self.output_quantizer.scale

    @property
    def output_zero(self) -> torch.Tensor | None:
        return self.output_quantizer.zero_point

    @property
    def input_scaler(self) -> torch.Tensor | None:
        return None if self.input_quantizer is None else self.input_quantizer.scale

    @property
    def input_zero(self) -> torch.Tensor | None:
        return None if self.input_quantizer is None else self.input_quantizer.zero_point

    # --- the seed's steps ------------------------------------------------------------------

    def quantize_weight(self) -> None:
        """Observe the (fixed) weight, compute its qparams and store the integer codes."""
        with torch.no_grad(), self._timed(self.weight_profiler, "observe_ms"):
            self.weight_observer.reset()
            self.weight_observer.update(self.weight)
            scale, zero = self.weight_observer.get_quantization_params()
            tensor_scale = self.weight_observer.get_tensor_scale()
        with torch.no_grad(), self._timed(self.weight_profiler, "quantize_ms"):
            self.weight_quantizer.update_quantization_params(scale, zero, tensor_scale)
            self.quant_weight = self.weight_quantizer.quant(self.weight)
            self.dequant_weight = self.weight_quantizer.dequantize(self.quant_weight)
        if self.weight_profiler is not None:
            self.weight_profiler.reset()
            self.profile_weight()

    def profile_weight(self) -> None:
        """Profile ``dequant_weight`` against ``weight`` (one weight profiler update)."""
        _profile(self.weight_profiler, self.weight_quantizer, self.weight, self.dequant_weight)
        self.weight_profiler.memory = memory_report(self.weight, self.weight_config,
                                                    self.weight_quantizer)

    def transform(self, calib_x: torch.Tensor, config: TransformConfig, *,
                  progress: Progress | None = None, cancel: Cancel | None = None
                  ) -> TransformResult:
        """Run a ``transform:`` section on this layer with calibration inputs ``calib_x``
        [..., in] (awq/gptq quantize onto this layer's weight format, see
        `quantlib.transforms.layer.weight_format_of`) and install it (`apply_transform`).
        ``progress``/``cancel`` as in `quantlib.transforms.control`. Returns the result."""
        result = transform_layer(self, calib_x, config, progress=progress, cancel=cancel)
        self.apply_transform(result)
        return result

    def apply_transform(self, result: TransformResult) -> None:
        """Install a `TransformResult` of this layer's weight (before calibration; once).

        ``weight`` becomes W'' and is re-quantized by this layer's own weight observer and
        quantizer, so ``quant_weight``, ``weight_scaler`` and ``weight_zero`` are the RTN
        codes and qparams of W''. With rtn that is also the weight the forward uses. With
        awq/gptq the forward uses ``dequant_weight`` = ``result.quantized_weight``, the
        algorithm's own dequantized weight: its values lie on per-group grids chosen by
        `quantlib.transforms.WeightQuantizer` (same format and granularity; GPTQ's block
        scales come from error-updated columns), so they are not ``dequantize(quant_weight)``
        and the codes/qparams above do not describe them; the weight profiler compares them
        with W''. ``load_state_dict`` rebuilds ``dequant_weight`` from the codes and so drops
        the algorithm's weight, and the transform itself is not saved."""
        install_transform(self, result)

    def calibration(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 forward on one calibration batch [..., in]; updates the output observer (and
        the input observer with ``act_config``). Returns the fp32 output [..., out]."""
        x = self._transformed(self._check_input(x, "calibration input"))
        with torch.no_grad(), self._timed(self.output_profiler, "calibration_ms"):
            output = self.fwd_func(x, self.weight, self.bias, **self.fwd_kwargs)
            if self.input_observer is not None:
                self.input_observer.update(x)
            self.output_observer.update(output)
        return output

    def compute_output_quant_params(self):
        """After calibration: output (and input) qparams. Returns
        ``((weight_scaler, weight_zero), (output_scaler, output_zero))``."""
        if self.output_observer.num_observed == 0:
            raise RuntimeError(f"{self.layer_name}: no calibration data yet; call "
                               "layer.calibration(x) on at least one non-empty batch first")
        with self._timed(self.output_profiler, "qparams_ms"):
            self.output_quantizer.update_quantization_params(
                *self.output_observer.get_quantization_params(),
                self.output_observer.get_tensor_scale())
            if self.input_observer is not None:
                self.input_quantizer.update_quantization_params(
                    *self.input_observer.get_quantization_params(),
                    self.input_observer.get_tensor_scale())
        return (self.weight_scaler, self.weight_zero), (self.output_scaler, self.output_zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fp32: the plain linear. quantized: [fake-quant input ->] dequantized weight ->
        linear -> output fake-quant, profiled against the true fp32 output."""
        if self._mode == "fp32":
            return self.fwd_func(self._transformed(self._check_input(x, "input")),
                                 self.weight, self.bias, **self.fwd_kwargs)
        if not self.output_quantizer.is_ready:
            raise RuntimeError(f"{self.layer_name}: quantized forward before the output qparams "
                               "exist; run layer.calibration(x) on calibration data, then "
                               "layer.compute_output_quant_params()")
        x = self._check_input(x, "input")
        with torch.no_grad(), self._timed(self.output_profiler, "forward_ms"):
            x_t = self._transformed(x)
            x_q = x_t if self.input_quantizer is None else self.input_quantizer(x_t)
            out_fp32 = self.fwd_func(x_q, self.dequant_weight, self.bias, **self.fwd_kwargs)
            output = self.output_quantizer(out_fp32)
        if self.enable_profiling:
            with torch.no_grad(), self._timed(self.output_profiler, "profile_ms"):
                self._profile_forward(x, x_t, x_q, output)
        return output

    def get_profiling_results(self) -> dict:
        """``{'weight': ..., 'output': ...}`` (+ ``'activation'`` with ``act_config``); each
        `QuantProfiler.get_results()`, or None where that config disables profiling."""
        return {key: (None if p is None else p.get_results())
                for key, p in self._profilers().items()
                if key != "activation" or self.act_config is not None}

    # --- helpers ---------------------------------------------------------------------------

    def _profile_forward(self, x, x_t, x_q, output) -> None:
        if self.output_profiler is not None:  # the reference: the original layer, x W^T + b
            weight = self.weight if self.original_weight is None else self.original_weight
            fp32_output = self.fwd_func(x, weight, self.bias, **self.fwd_kwargs)
            if self.keep_fp32_output:
                self.last_fp32_output = fp32_output
            _profile(self.output_profiler, self.output_quantizer, fp32_output, output)
            self.output_profiler.memory = memory_report(output, self.out_config,
                                                        self.output_quantizer)
        if self.input_profiler is not None:
            _profile(self.input_profiler, self.input_quantizer, x_t, x_q)
            self.input_profiler.memory = memory_report(x_t, self.act_config,
                                                       self.input_quantizer)

    def _profilers(self) -> dict[str, QuantProfiler | None]:
        return {"weight": self.weight_profiler, "output": self.output_profiler,
                "activation": self.input_profiler}

    def _transformed(self, x: torch.Tensor) -> torch.Tensor:
        """x'' (the installed transform's input transform), or x itself without one."""
        if self.transform_result is None:
            return x
        return self.transform_result.transform_input(x).contiguous()

    def _check_input(self, x: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.layer_name}: {what} must be a torch.Tensor, "
                            f"got {type(x).__name__}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self.layer_name}: {what} has shape {tuple(x.shape)}; its last "
                             f"dimension must be in_features={self.in_features}")
        if not x.is_floating_point():
            raise TypeError(f"{self.layer_name}: {what} must be floating point, got {x.dtype}")
        if x.device != self.weight.device:
            raise ValueError(f"{self.layer_name}: {what} is on {x.device} but the layer is on "
                             f"{self.weight.device}; move one with .to(device)")
        _check_finite(x, self.layer_name, what)
        # One memory layout: BLAS rounds a transposed or strided input differently, and the
        # same values must give the same bits whatever their layout.
        return x.float().contiguous()

    @contextmanager
    def _timed(self, profiler: QuantProfiler | None, stage: str):
        start = time.perf_counter()
        yield
        if profiler is not None:
            if self.weight.is_cuda:
                torch.cuda.synchronize(self.weight.device)
            profiler.record_time(stage, (time.perf_counter() - start) * 1e3)

    def extra_repr(self) -> str:
        return (f"{self.layer_name}: in={self.in_features}, out={self.out_features}, "
                f"mode={self._mode}")


def _refresh_after_load(layer: QuantLinear, incompatible_keys) -> None:
    """After ``load_state_dict``: the codes and qparams are the loaded ones, so the dequantized
    weight (not saved) is rebuilt from them; codes outside this layer's bit type are refused."""
    if incompatible_keys.missing_keys or incompatible_keys.unexpected_keys:
        return  # torch raises for these (strict) or the caller chose to ignore them
    codes = layer.quant_weight
    if codes is None or not layer.weight_quantizer.is_ready:
        return
    bits = layer.weight_config.bit_type
    low, high = int(codes.min()), int(codes.max())
    if low < bits.qmin or high > bits.qmax:
        raise ValueError(f"{layer.layer_name}: the loaded weight codes span [{low}, {high}], "
                         f"outside this layer's {bits.name} range [{bits.qmin}, {bits.qmax}]; "
                         "load a state_dict saved with the same weight config")
    with torch.no_grad():
        layer.dequant_weight = layer.weight_quantizer.dequantize(codes)


def _check_finite(t: torch.Tensor, layer_name: str, what: str) -> None:
    if t.numel() == 0:
        return
    low, high = torch.aminmax(t.detach())  # NaN and Inf propagate: one cheap pass
    if not (math.isfinite(float(low)) and math.isfinite(float(high))):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{layer_name}: the {what} contains {bad} NaN/Inf value(s); "
                         "quantization needs finite values")


def _make_profiler(config: QuantConfig | None, name: str, axis: int) -> QuantProfiler | None:
    return QuantProfiler(name, axis) if config is not None and config.enable_profiler else None


def _profile(profiler: QuantProfiler, quantizer: Quantizer, reference: torch.Tensor,
             quantized: torch.Tensor) -> None:
    """One profiler update; block scales and float grids pass their own clipped mask."""
    lo, hi = quantizer.clip_range()
    if quantizer.block_size is None and not quantizer.bit_type.is_float:
        profiler.update(reference, quantized, lo, hi, quantizer.scale)
        return
    profiler.update(reference, quantized, lo.min().reshape(1), hi.max().reshape(1),
                    clipped=quantizer.clipped_mask(reference))


# --- self-test: python -m quantlib.quant_linear -------------------------------------------


def test_quantlinear_profiling() -> list[str]:
    """The seed's self-test (`quantlib.self_test`); returns the failed checks (empty when all
    pass)."""
    from quantlib.self_test import quantlinear_self_test

    return quantlinear_self_test(QuantLinear)


if __name__ == "__main__":
    print("QuantLinear self-test (the seed's test_quantlinear_profiling)")
    failed = test_quantlinear_profiling()
    print("PASSED" if not failed else f"FAILED: {len(failed)} check(s)")
    sys.exit(1 if failed else 0)
