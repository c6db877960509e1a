"""Exact uniform quantization, bit-identical to ``torch.fake_quantize_per_*_affine``.

``q = clamp(round_half_even(x * (1/scale)) + zero_point, qmin, qmax)`` with a float32
reciprocal, and ``dequant = (q - zero_point) * scale``.

``scale`` / ``zero_point`` have shape [1] (per tensor) or [C] (per channel along ``axis``).
"""

from __future__ import annotations

import torch

from quantlib.bit_type import BitType

EPS = torch.finfo(torch.float32).eps


def calculate_qparams(
    min_val: torch.Tensor, max_val: torch.Tensor, bit_type: BitType, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Range -> (scale float32, zero_point int64), torch.ao's rules.

    ``min_val``/``max_val``: [1] or [C]. Zero is always representable; scale >= float32 eps.
    """
    qmin, qmax = bit_type.qmin, bit_type.qmax
    min_neg = torch.clamp(min_val.float(), max=0.0)
    max_pos = torch.clamp(max_val.float(), min=0.0)
    if symmetric:
        scale = torch.maximum(-min_neg, max_pos) / ((qmax - qmin) / 2)
        scale = torch.clamp(scale, min=EPS)
        zero = 0 if bit_type.signed else (qmax + qmin + 1) // 2
        zero_point = torch.full_like(scale, zero, dtype=torch.int64)
    else:
        scale = torch.clamp((max_pos - min_neg) / float(qmax - qmin), min=EPS)
        zero_point = qmin - torch.round(min_neg / scale).to(torch.int64)
        zero_point = torch.clamp(zero_point, qmin, qmax)
    return scale, zero_point


def _along(param: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """View a [1] or [C] qparam so it broadcasts against ``x`` along ``axis``."""
    if param.numel() == 1 or x.dim() == 0:
        return param.reshape(())
    axis = axis % x.dim()
    shape = [1] * x.dim()
    shape[axis] = param.numel()
    return param.reshape(shape)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
             bit_type: BitType, axis: int = 0) -> torch.Tensor:
    """Float tensor -> integer codes (int32, same shape) in [qmin, qmax]."""
    return _codes(x, _along(scale, x, axis), _along(zero_point, x, axis).to(torch.float32),
                  bit_type).to(torch.int32)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               axis: int = 0) -> torch.Tensor:
    """Integer codes -> float32 values ``(q - zero_point) * scale``."""
    zp = _along(zero_point, codes, axis).to(torch.float32)
    return (codes.to(torch.float32) - zp) * _along(scale.float(), codes, axis)


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                  bit_type: BitType, axis: int = 0) -> torch.Tensor:
    """Quantize then dequantize in one pass (float32 out)."""
    return fake_quantize_broadcast(x, _along(scale, x, axis), _along(zero_point, x, axis),
                                   bit_type)


def fake_quantize_broadcast(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                            bit_type: BitType) -> torch.Tensor:
    """`fake_quantize` with qparams already shaped to broadcast against ``x`` (e.g. a batch of
    candidate ranges [R, C, 1] against values [C, N])."""
    scale = scale.float()
    zp = zero_point.to(torch.float32)
    return (_codes(x, scale, zp, bit_type) - zp) * scale


def grid_range(scale: torch.Tensor, zero_point: torch.Tensor,
               bit_type: BitType) -> tuple[torch.Tensor, torch.Tensor]:
    """The representable range ((qmin - zp) * s, (qmax - zp) * s), shaped like ``scale``."""
    return ((bit_type.qmin - zero_point).float() * scale,
            (bit_type.qmax - zero_point).float() * scale)


def _codes(x, scale, zero_point, bit_type):
    """clamp(round_half_even(x * (1/s)) + zp, qmin, qmax) as float32; ``scale`` and the float
    ``zero_point`` already broadcast against ``x``."""
    q = torch.round(x.float() * torch.reciprocal(scale.float())) + zero_point
    return torch.clamp(q, bit_type.qmin, bit_type.qmax)
