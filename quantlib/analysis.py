"""Analyses on top of the quantizers: error decomposition, clip-threshold curves, bit-width
sweeps and integer-code statistics. Pure torch; used by the explorer and by tests."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from quantlib.bit_type import BitType
from quantlib.observers.omse import histogram_summary
from quantlib.profiler import HALF_STEP, as_channels, qsnr_db
from quantlib.quantizers.functional import calculate_qparams, fake_quantize, fake_quantize_broadcast

SUMMARY_BINS = 4096


def error_decomposition(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                        bit_type: BitType, axis: int = 0) -> dict:
    """Split the fake-quant MSE of ``x`` into clipping (overload) and rounding (granular) parts.

    An element is clipped when it lies over half a step beyond the representable range
    [(qmin - zp) * s, (qmax - zp) * s], so its error comes from clamping, not rounding. Per-channel
    arrays are [C] along ``axis`` (C = 1 for a per-tensor ``scale``). Also returns the
    theoretical rounding MSE mean(s^2 / 12) and RMSE / scale (about 0.29 when the error is
    rounding only).
    """
    x = x.detach().float()
    deq = fake_quantize(x, scale, zero_point, bit_type, axis)
    channels = as_channels(x, axis) if scale.numel() > 1 else x.reshape(1, -1)
    deq_channels = as_channels(deq, axis) if scale.numel() > 1 else deq.reshape(1, -1)
    sq = (deq_channels - channels).double().pow(2)
    clipped = _clamped(channels, scale.reshape(-1, 1), zero_point.reshape(-1, 1), bit_type)
    n_per_channel = channels.shape[1]
    clip_c = torch.where(clipped, sq, 0.0).sum(1) / n_per_channel
    round_c = torch.where(clipped, 0.0, sq).sum(1) / n_per_channel
    total_c = sq.sum(1) / n_per_channel
    theory = float((scale.double() ** 2 / 12).mean())
    total = float(total_c.mean())
    return {
        "total_mse": total,
        "clipping_mse": float(clip_c.mean()),
        "rounding_mse": float(round_c.mean()),
        "theoretical_rounding_mse": theory,
        "rmse_over_scale": math.sqrt(total) / float(scale.double().mean()),
        "clip_fraction": float(clipped.double().mean()),
        "per_channel": {"total_mse": total_c, "clipping_mse": clip_c, "rounding_mse": round_c},
    }


def clip_threshold_curve(x: torch.Tensor, bit_type: BitType, symmetric: bool = True,
                         num_points: int = 200) -> dict:
    """Per-tensor MSE of ``x`` as the clip threshold t sweeps (0, max|x|].

    Uniform quantizes over [-t, t]; Affine over [max(min, -t), min(max, t)]. Each point is
    split into clipping + rounding error (they add up to the total). Tensors over 16 values per
    bin are scored on one 4096-bin histogram summary (bin means weighted by counts), so the
    whole curve costs O(points * bins), not O(points * N).
    Returns float64 tensors [P]: thresholds, total_mse, clipping_mse, rounding_mse.
    """
    flat = x.detach().float().reshape(1, -1)
    n = flat.shape[1]
    x_min, x_max = float(flat.min()), float(flat.max())
    amax = max(abs(x_min), abs(x_max), torch.finfo(torch.float32).eps)
    thresholds = torch.linspace(amax / num_points, amax, num_points, dtype=torch.float32,
                                device=flat.device)
    if n > 16 * SUMMARY_BINS:
        values, weights = histogram_summary(flat, SUMMARY_BINS)
    else:
        values, weights = flat, torch.ones_like(flat, dtype=torch.float64)
    if symmetric:
        lo_range, hi_range = -thresholds, thresholds
    else:
        lo_range = torch.clamp(-thresholds, min=min(x_min, 0.0))
        hi_range = torch.clamp(thresholds, max=max(x_max, 0.0))
    scale, zero = calculate_qparams(lo_range, hi_range, bit_type, symmetric)  # [P]
    deq = fake_quantize_broadcast(values, scale.unsqueeze(1), zero.unsqueeze(1), bit_type)
    sq = (deq - values).double().pow(2) * weights  # [P, B]
    clipped = _clamped(values, scale.unsqueeze(1), zero.unsqueeze(1), bit_type)
    clipping = torch.where(clipped, sq, 0.0).sum(1) / n
    rounding = torch.where(clipped, 0.0, sq).sum(1) / n
    return {"thresholds": thresholds.double().cpu(), "total_mse": (clipping + rounding).cpu(),
            "clipping_mse": clipping.cpu(), "rounding_mse": rounding.cpu()}


def code_statistics(codes: torch.Tensor, bit_type: BitType) -> dict:
    """Which integer codes are used: counts int64 [2**bits] indexed from qmin, the share of
    codes used at least once, and the effective bits (entropy of the code distribution)."""
    offset = codes.reshape(-1).long() - bit_type.qmin
    counts = torch.bincount(offset, minlength=bit_type.num_levels).cpu()
    total = int(counts.sum())
    p = counts[counts > 0].double() / max(total, 1)
    return {"codes": torch.arange(bit_type.qmin, bit_type.qmax + 1), "counts": counts,
            "used_fraction": float((counts > 0).double().mean()),
            "effective_bits": float(-(p * torch.log2(p)).sum()) if total else 0.0}


def follow_value(x: float, scale: float, zero_point: int, bit_type: BitType) -> dict:
    """One value through the quantizer, step by step, in the same float32 arithmetic as the
    kernels: x -> x*(1/s) -> round -> +zp -> clamp -> (q - zp)*s -> error."""
    xt = torch.tensor([x], dtype=torch.float32)
    st = torch.tensor([scale], dtype=torch.float32)
    inv = torch.reciprocal(st)
    scaled = xt * inv
    rounded = torch.round(scaled)
    shifted = rounded + float(zero_point)
    code = torch.clamp(shifted, bit_type.qmin, bit_type.qmax)
    deq = (code - float(zero_point)) * st
    return {"x": float(xt), "inv_scale": float(inv), "scaled": float(scaled),
            "rounded": float(rounded), "plus_zero_point": float(shifted), "code": int(code),
            "clamped": bool(shifted != code), "dequantized": float(deq),
            "error": float(deq - xt)}


def sweep_bit_widths(layer, eval_x: torch.Tensor, bits_list=range(2, 9)) -> dict:
    """Weight and output QSNR of a calibrated `QuantLinear` at each bit width (weight and
    output both at b bits, signedness kept), without recalibrating: the observers re-derive
    qparams from the data they already hold. Equals building the layer at b bits.

    Returns lists over ``bits``: weight_qsnr, output_qsnr (dB), weight_scale_mean.
    """
    with torch.no_grad():
        x = eval_x.float()
        reference = F.linear(x, layer.weight, layer.bias)
        x_q = x
        if layer.input_quantizer is not None:
            x_q = layer.input_quantizer(x)
        out = {"bits": [], "weight_qsnr": [], "output_qsnr": []}
        for bits in bits_list:
            w_bt = BitType(bits, layer.weight_config.bit_type.signed)
            o_bt = BitType(bits, layer.out_config.bit_type.signed)
            w_scale, w_zero = layer.weight_observer.with_bit_type(w_bt).get_quantization_params()
            deq_w = fake_quantize(layer.weight, w_scale, w_zero, w_bt, 0)
            o_scale, o_zero = layer.output_observer.with_bit_type(o_bt).get_quantization_params()
            y = fake_quantize(F.linear(x_q, deq_w, layer.bias), o_scale, o_zero, o_bt, -1)
            out["bits"].append(bits)
            out["weight_qsnr"].append(_qsnr(layer.weight, deq_w))
            out["output_qsnr"].append(_qsnr(reference, y))
        return out


def _clamped(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
             bit_type: BitType) -> torch.Tensor:
    """True where x lies over half a step beyond the representable range (broadcasting), the
    profiler's definition of clipped."""
    scale = scale.float()
    lo = (bit_type.qmin - zero_point).to(torch.float32) * scale
    hi = (bit_type.qmax - zero_point).to(torch.float32) * scale
    return (x < lo - scale * HALF_STEP) | (x > hi + scale * HALF_STEP)


def _qsnr(reference: torch.Tensor, approx: torch.Tensor) -> float:
    signal = float(reference.pow(2).sum(dtype=torch.float64))
    noise = float((approx - reference).pow(2).sum(dtype=torch.float64))
    return qsnr_db(signal, noise)
