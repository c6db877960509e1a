"""`Quantizer`: holds one tensor's qparams and applies them, in any element format and at
any granularity (per tensor, per channel, per block of N along the last axis, or dynamic
blocks computed from each tensor it sees)."""

from __future__ import annotations

import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.formats.blocks import to_blocks
from quantlib.formats.grid import signed_grid
from quantlib.quantizers import format_ops as FO
from quantlib.quantizers.functional import _along

_BUFFERS = ("scale", "zero_point", "tensor_scale")


class Quantizer(nn.Module):
    """Applies ``scale``/``zero_point`` (and NVFP4's ``tensor_scale``).

    Shapes of ``scale``/``zero_point``:

    - per tensor: [1]; per channel: [C] along ``channel_axis``;
    - ``block_size`` N (static, e.g. a weight [out, in]): [..., D/N], one per block of N
      consecutive values along the last axis (a weight: [out, in/N]);
    - ``dynamic`` (activations with block_wise): the scales come from each tensor's blocks
      when it is quantized, and ``scale``/``zero_point`` then hold those of the last tensor
      ([..., D/N], e.g. [tokens, D/N]); before that, the calibrated per-tensor values [1].

    ``tensor_scale`` (0-d float32) is NVFP4's per-tensor FP32 scale, None for other formats.
    Uniform and Affine share one grid: they differ only in the qparams (``symmetric`` is
    used by dynamic integer blocks).
    """

    def __init__(self, bit_type: BitType, channel_axis: int = 0, block_size: int | None = None,
                 dynamic: bool = False, symmetric: bool = True) -> None:
        super().__init__()
        if dynamic and block_size is None:
            raise ValueError("a dynamic quantizer needs a block_size")
        self.bit_type = bit_type
        self.channel_axis = channel_axis
        self.block_size = block_size
        self.dynamic = dynamic
        self.symmetric = symmetric
        for name in _BUFFERS:
            self.register_buffer(name, None)

    @classmethod
    def from_config(cls, config, channel_axis: int = 0, dynamic: bool = False) -> Quantizer:
        """The quantizer a `QuantConfig` describes; ``dynamic`` for block_wise activations."""
        block = config.block_size if config.calibration_mode == "block_wise" else None
        return cls(config.bit_type, channel_axis, block, dynamic and block is not None,
                   config.is_symmetric)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Before its first qparams a quantizer's buffers are None, which torch would report as
        # unexpected keys: give each a slot of the incoming shape to load into. Dynamic
        # scales change shape with the tensor, so they take the incoming shape too.
        for name in _BUFFERS:
            incoming = state_dict.get(prefix + name)
            current = getattr(self, name)
            if incoming is not None and (current is None or (
                    self.dynamic and current.shape != incoming.shape)):
                setattr(self, name, torch.empty_like(incoming))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_ready(self) -> bool:
        return self.scale is not None

    def update_quantization_params(self, scale: torch.Tensor, zero_point: torch.Tensor,
                                   tensor_scale: torch.Tensor | None = None) -> None:
        self.scale = scale.detach().float()
        self.zero_point = zero_point.detach().to(torch.int64)
        if tensor_scale is not None:
            self.tensor_scale = tensor_scale.detach().float().reshape(())
        if self.bit_type.family == "nvfp4" and self.tensor_scale is None:
            raise ValueError("nvfp4 needs its per-tensor scale (tensor_scale)")

    # --- applying the qparams --------------------------------------------------------------

    def _prepared(self, x: torch.Tensor, refresh: bool):
        """(values view, scale, zero_point) broadcasting against each other; dynamic
        quantizers with ``refresh`` first compute (and keep) the blocks' qparams from ``x``."""
        if self.scale is None:
            raise RuntimeError("quantizer has no qparams yet; calibrate and compute them first")
        if self.block_size is None:
            return (x, _along(self.scale, x, self.channel_axis),
                    _along(self.zero_point, x, self.channel_axis))
        view = to_blocks(x, self.block_size)
        if self.dynamic and refresh:
            values = view.float()
            scale, zero = FO.range_to_qparams(values.amin(-1), values.amax(-1), self.bit_type,
                                              self.symmetric, self.tensor_scale)
            self.scale, self.zero_point = scale, zero
        if tuple(self.scale.shape) != tuple(view.shape[:-1]):
            raise ValueError(f"this quantizer holds block scales of shape "
                             f"{tuple(self.scale.shape)}, for a tensor [..., D] with "
                             f"D/{self.block_size} blocks; got a tensor of shape {tuple(x.shape)}")
        return view, self.scale.unsqueeze(-1), self.zero_point.unsqueeze(-1)

    def quant(self, x: torch.Tensor) -> torch.Tensor:
        """Float -> int32 codes, same shape (`quantlib.formats.grid`'s convention)."""
        view, scale, zero = self._prepared(x, refresh=True)
        return FO.quantize_any(view, scale, zero, self.bit_type,
                               self.tensor_scale).reshape(x.shape)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """int codes -> float32, same shape (dynamic: with the last tensor's scales)."""
        view, scale, zero = self._prepared(codes, refresh=False)
        return FO.dequantize_any(view, scale, zero, self.bit_type,
                                 self.tensor_scale).reshape(codes.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake quantization: quantize and dequantize a float tensor (float32 out)."""
        view, scale, zero = self._prepared(x, refresh=True)
        return FO.fake_quantize_any(view, scale, zero, self.bit_type,
                                    self.tensor_scale).reshape(x.shape)

    def clipped_mask(self, x: torch.Tensor) -> torch.Tensor:
        """bool, same shape as ``x``: values over half an edge step beyond the representable
        range of their scale (dynamic: the last tensor's scales; ``x`` of its shape)."""
        view, scale, zero = self._prepared(x, refresh=False)
        lo, hi = FO.representable_range(scale, zero, self.bit_type, self.tensor_scale)
        half = FO.edge_step(scale, self.bit_type, self.tensor_scale) * 0.5 * (1 + 1e-5)
        return ((view < lo - half) | (view > hi + half)).reshape(x.shape)

    # --- describing the grid ---------------------------------------------------------------

    def clip_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The representable range (lo, hi), each shaped like ``scale``."""
        if self.scale is None:
            raise RuntimeError("quantizer has no qparams yet; calibrate and compute them first")
        return FO.representable_range(self.scale, self.zero_point, self.bit_type,
                                      self.tensor_scale)

    def effective_scale(self) -> torch.Tensor:
        """The value of one element unit per scale, shaped like ``scale`` (NVFP4: block scale
        times the tensor scale; otherwise ``scale``)."""
        return FO.effective_scale(self.scale, self.bit_type, self.tensor_scale)

    def element_levels(self) -> torch.Tensor:
        """The format's representable element values, sorted and unscaled, float32: the
        integer codes qmin..qmax for integer formats ([2**bits]); the signed element grid for
        float formats ([2n - 1], e.g. E2M1: -6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, ..., 6)."""
        if self.bit_type.family == "int":
            return torch.arange(self.bit_type.qmin, self.bit_type.qmax + 1, dtype=torch.float32)
        return signed_grid(self.bit_type.format)

    def levels(self, channel: int = 0) -> torch.Tensor:
        """All dequantized grid values of one scale (a channel, or block number ``channel`` of
        the flattened block scales), sorted: float32 [num_levels]."""
        if self.scale is None:
            raise RuntimeError("quantizer has no qparams yet; calibrate and compute them first")
        scale = self.effective_scale().reshape(-1)
        zero = self.zero_point.reshape(-1)
        idx = min(channel, scale.numel() - 1)
        elements = self.element_levels().to(scale.device)
        return (elements - zero[idx].float()) * scale[idx]

    def extra_repr(self) -> str:
        blocks = "" if self.block_size is None else f", block_size={self.block_size}"
        dynamic = ", dynamic" if self.dynamic else ""
        return f"bit_type={self.bit_type.name}, channel_axis={self.channel_axis}{blocks}{dynamic}"
