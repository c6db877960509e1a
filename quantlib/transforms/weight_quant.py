"""Weight quantization with scales fixed per group, for AWQ and GPTQ.

GPTQ quantizes one input column at a time with scales chosen earlier, so each format is split
into two steps here:

- ``group_params(cols)``: the scale(s) of one group of columns, from their current values;
- ``quantize(cols, params)``: round values onto that fixed grid and back (dequantized).

A weight is [out, in]; scale groups run along the input axis (the formats' blocks along the
last axis). ``granularity``:

- ``"tensor"``: one scale for the whole weight;
- ``"channel"``: one scale per output row (the group is the whole row);
- ``"block"``: one scale per ``block_size`` consecutive input columns of a row (MX: 32,
  NVFP4: 16, required; ints and FP8: any size dividing ``in``).

The formats' own kernels are reused (``quantlib.formats``); ``quantize_all`` (RTN) is
bit-identical to ``quantlib.formats.fake_quantize`` with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantlib.bit_type import BitType
from quantlib.errors import ConfigError, show_value
from quantlib.formats import FORMATS, get_format
from quantlib.formats.fp8 import choose_fp8_scale
from quantlib.formats.minifloat import FP4_E2M1, round_to_minifloat
from quantlib.formats.mx import (
    FLOAT32_MIN_NORMAL,
    MXINT8_FRACTION_BITS,
    MXINT8_MAX_CODE,
    shared_exponent,
)
from quantlib.formats.nvfp4 import nvfp4_scales

GRANULARITIES = ("tensor", "channel", "block")
DEFAULT_BLOCK_SIZE = 128

Params = tuple[torch.Tensor, ...]


def valid_format_names() -> str:
    """The format names a weight quantizer accepts, for error messages."""
    floats = [name for name, spec in FORMATS.items() if spec.family != "int"]
    return "int2..int16, uint2..uint16, " + ", ".join(floats)


@dataclass(frozen=True)
class WeightFormat:
    """How a weight [out, in] is quantized: ``name`` (a ``quantlib.formats`` name such as
    ``int4``, ``fp8_e4m3``, ``mxfp4``, ``nvfp4``), ``granularity`` (tensor | channel | block),
    ``block_size`` (block only; None means the format's own block, MX 32 / NVFP4 16, or
    ``DEFAULT_BLOCK_SIZE`` = 128 for integers and FP8) and ``symmetric``
    (integers: Uniform when True, Affine when False; float formats are symmetric only)."""

    name: str = "int4"
    granularity: str = "block"
    block_size: int | None = None
    symmetric: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in FORMATS:
            raise ConfigError(f"{show_value(self.name)} is not a weight format; valid formats: "
                              f"{valid_format_names()}", "weight_format.name")
        spec = get_format(self.name)
        if self.granularity not in GRANULARITIES:
            raise ConfigError(f"{show_value(self.granularity)} is not valid; choose one of "
                              f"{', '.join(GRANULARITIES)}", "weight_format.granularity")
        if spec.block_size is not None:
            if self.granularity != "block":
                raise ConfigError(f"{self.name} has one scale per block of {spec.block_size}; "
                                  "granularity must be block", "weight_format.granularity")
            if self.block_size not in (None, spec.block_size):
                raise ConfigError(f"{self.name} needs block_size {spec.block_size}, got "
                                  f"{show_value(self.block_size)}", "weight_format.block_size")
            object.__setattr__(self, "block_size", spec.block_size)
        if self.granularity == "block":
            if self.block_size is None:
                object.__setattr__(self, "block_size", DEFAULT_BLOCK_SIZE)
            size = self.block_size
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 65536:
                raise ConfigError(f"must be an integer from 1 to 65536 for block granularity, "
                                  f"got {show_value(size)}", "weight_format.block_size")
        elif self.block_size is not None:
            object.__setattr__(self, "block_size", None)
        if not isinstance(self.symmetric, bool):
            raise ConfigError(f"must be true or false, got {show_value(self.symmetric)}",
                              "weight_format.symmetric")
        if spec.family != "int" and not self.symmetric:
            raise ConfigError(f"{self.name} is symmetric only; symmetric=False (Affine) applies "
                              "to integer formats", "weight_format.symmetric")

    @classmethod
    def from_quant_settings(cls, name: str, calibration_mode: str,
                            block_size: int | None = None,
                            quantization_method: str = "Uniform") -> WeightFormat:
        """From a weight ``QuantConfig``'s words: ``calibration_mode`` layer_wise -> tensor,
        channel_wise -> channel, block_wise -> block; ``quantization_method`` Uniform ->
        symmetric, Affine -> asymmetric."""
        modes = {"layer_wise": "tensor", "channel_wise": "channel", "block_wise": "block"}
        if calibration_mode not in modes:
            raise ConfigError(f"{show_value(calibration_mode)} is not valid; choose one of "
                              f"{', '.join(modes)}", "calibration_mode")
        if quantization_method not in ("Uniform", "Affine"):
            raise ConfigError(f"{show_value(quantization_method)} is not valid; choose one of "
                              "Uniform, Affine", "quantization_method")
        granularity = modes[calibration_mode]
        return cls(name, granularity, block_size if granularity == "block" else None,
                   quantization_method == "Uniform")

    def group_size(self, in_features: int) -> int:
        """Columns sharing one scale: ``block_size``, or ``in_features`` (tensor/channel)."""
        if self.granularity != "block":
            return in_features
        if in_features % self.block_size:
            raise ValueError(f"{self.name}: block_size {self.block_size} must divide the "
                             f"weight's input size {in_features}")
        return self.block_size


class WeightQuantizer:
    """A ``WeightFormat`` bound to one weight [out, in] (tensor-wide settings fixed from it:
    the per-tensor scale, NVFP4's FP32 tensor scale)."""

    def __init__(self, fmt: WeightFormat, weight: torch.Tensor) -> None:
        if weight.dim() != 2:
            raise ValueError(f"weight must be 2-D [out, in], got shape {tuple(weight.shape)}")
        self.fmt = fmt
        self.spec = get_format(fmt.name)
        self.out_features, self.in_features = weight.shape
        self.group = fmt.group_size(self.in_features)
        self._tensor_amax = weight.detach().float().abs().amax()
        self._fixed: Params | None = None
        if self.spec.family == "nvfp4":  # the FP32 tensor scale, 0-d, from max|W|
            self._tensor_scale = nvfp4_scales(torch.zeros(16), self._tensor_amax)[0]
        if fmt.granularity == "tensor":
            self._fixed = self._params(weight.detach().float().reshape(1, -1))
            self._fixed = tuple(p.reshape(1, 1) for p in self._fixed)

    @property
    def fixed_params(self) -> Params | None:
        """The one set of params when granularity is tensor (shapes [1, 1]), else None."""
        return self._fixed

    def group_params(self, cols: torch.Tensor) -> Params:
        """Params of one scale group from its current values ``cols`` [out, g] (or a batch
        [out, n_groups, g]); each tensor broadcasts against ``cols`` ([out, 1] / [out, n, 1])."""
        if self._fixed is not None:
            return self._fixed
        return self._params(cols.float())

    def _params(self, x: torch.Tensor) -> Params:
        """Reduce the last axis of ``x`` [..., g] (keepdim)."""
        family, spec = self.spec.family, self.spec
        if family == "int":
            bit_type = BitType(spec.element_bits, spec.signed)
            lo = torch.clamp(x.amin(dim=-1, keepdim=True), max=0.0)
            hi = torch.clamp(x.amax(dim=-1, keepdim=True), min=0.0)
            # torch.ao's rules, as quantlib.quantizers.functional.calculate_qparams (copied:
            # quantlib.formats is the only dependency of this package besides errors).
            qmin, qmax = bit_type.qmin, bit_type.qmax
            eps = torch.finfo(torch.float32).eps
            if self.fmt.symmetric:
                scale = torch.clamp(torch.maximum(-lo, hi) / ((qmax - qmin) / 2), min=eps)
                zero = 0 if bit_type.signed else (qmax + qmin + 1) // 2
                zero_point = torch.full_like(scale, float(zero))
            else:
                scale = torch.clamp((hi - lo) / float(qmax - qmin), min=eps)
                zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax)
            return scale, zero_point
        if family == "fp8":
            return (choose_fp8_scale(x, spec.element, block_size=x.shape[-1]).reshape(
                *x.shape[:-1], 1),)
        if family == "mx":
            emax = 0 if spec.element is None else spec.element.max_pow2
            exponent = shared_exponent(x, emax)
            return (torch.ldexp(torch.ones_like(exponent, dtype=torch.float32), exponent),)
        _, block_scale = nvfp4_scales(x, self._tensor_amax)
        return block_scale.reshape(*x.shape[:-1], 1), self._tensor_scale

    def quantize(self, cols: torch.Tensor, params: Params) -> torch.Tensor:
        """``cols`` rounded onto the grid of ``params`` and back (float32, same shape)."""
        family, x = self.spec.family, cols.float()
        if family == "int":
            scale, zero_point = params
            bit_type = BitType(self.spec.element_bits, self.spec.signed)
            q = torch.round(x * torch.reciprocal(scale)) + zero_point
            return (torch.clamp(q, bit_type.qmin, bit_type.qmax) - zero_point) * scale
        if family == "fp8":
            (scale,) = params
            codes = round_to_minifloat(x / scale, self.spec.element)
            return torch.where(scale == 0, 0.0, codes * scale)
        if family == "mx":
            (scale,) = params
            if self.spec.element is None:  # MXINT8
                fixed = torch.round(x / scale * 2**MXINT8_FRACTION_BITS)
                codes = torch.clamp(fixed, -MXINT8_MAX_CODE, MXINT8_MAX_CODE)
                return codes * 2.0**-MXINT8_FRACTION_BITS * scale
            codes = round_to_minifloat(x / torch.clamp(scale, min=FLOAT32_MIN_NORMAL),
                                       self.spec.element)
            return codes * scale
        block_scale, tensor_scale = params
        codes = round_to_minifloat(x * ((1.0 / tensor_scale) / block_scale), FP4_E2M1)
        return torch.where(tensor_scale == 0, 0.0, codes * (tensor_scale * block_scale))

    def quantize_all(self, weight: torch.Tensor) -> torch.Tensor:
        """Round-to-nearest of the whole ``weight`` [out, in] (every group at once), float32."""
        out, inp = weight.shape
        blocks = weight.float().reshape(out, inp // self.group, self.group)
        return self.quantize(blocks, self.group_params(blocks)).reshape(out, inp)
