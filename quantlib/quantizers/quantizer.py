"""`Quantizer`: holds one tensor's qparams and applies them."""

from __future__ import annotations

import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.quantizers import functional as QF


class Quantizer(nn.Module):
    """Applies ``scale``/``zero_point`` ([1] per tensor or [C] along ``channel_axis``).

    The same integer grid serves both methods: `Uniform` and `Affine` differ only in the
    qparams the observer chooses.
    """

    def __init__(self, bit_type: BitType, channel_axis: int = 0) -> None:
        super().__init__()
        self.bit_type = bit_type
        self.channel_axis = channel_axis
        self.register_buffer("scale", None)
        self.register_buffer("zero_point", None)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Before its first qparams a quantizer's buffers are None, which torch would report as
        # unexpected keys: give each a slot of the incoming shape to load into.
        for name in ("scale", "zero_point"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None and getattr(self, name) is None:
                setattr(self, name, torch.empty_like(incoming))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def is_ready(self) -> bool:
        return self.scale is not None

    def update_quantization_params(self, scale: torch.Tensor, zero_point: torch.Tensor) -> None:
        self.scale = scale.detach().float()
        self.zero_point = zero_point.detach().to(torch.int64)

    def _params(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scale is None:
            raise RuntimeError("quantizer has no qparams yet; calibrate and compute them first")
        return self.scale, self.zero_point

    def quant(self, x: torch.Tensor) -> torch.Tensor:
        """Float -> int32 codes."""
        scale, zero = self._params()
        return QF.quantize(x, scale, zero, self.bit_type, self.channel_axis)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """int codes -> float32."""
        scale, zero = self._params()
        return QF.dequantize(codes, scale, zero, self.channel_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake quantization: quantize and dequantize a float tensor."""
        scale, zero = self._params()
        return QF.fake_quantize(x, scale, zero, self.bit_type, self.channel_axis)

    def clip_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The representable range (lo, hi), each shaped like ``scale``."""
        return QF.grid_range(*self._params(), self.bit_type)

    def levels(self, channel: int = 0) -> torch.Tensor:
        """All dequantized grid values of one channel: [2**bits] float32."""
        scale, zero = self._params()
        idx = min(channel, scale.numel() - 1)
        codes = torch.arange(self.bit_type.qmin, self.bit_type.qmax + 1, device=scale.device)
        return (codes - zero[idx]).float() * scale[idx]

    def extra_repr(self) -> str:
        return f"bit_type={self.bit_type.name}, channel_axis={self.channel_axis}"
