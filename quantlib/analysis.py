"""Analyses on top of the quantizers: error decomposition, clip-threshold curves, bit-width
sweeps and code statistics. Pure torch; used by the explorer and by tests.

Which views apply to which formats:

- `error_decomposition`, `code_statistics`, `follow_value`: every format and granularity
  (float formats: the theoretical rounding MSE s^2/12 assumes a uniform grid, so it and
  ``rmse_over_scale`` are NaN);
- `clip_threshold_curve`: integers and FP8 (one per-tensor clip threshold); MX and NVFP4
  raise ValueError (their scales come from each block's amax);
- `sweep_bit_widths`: integer formats (any granularity); float formats have a fixed element
  width and raise ValueError.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from quantlib.bit_type import BitType
from quantlib.observers.omse import SUMMARY_BINS, histogram_summary
from quantlib.profiler import as_channels, beyond_half_step, qsnr_db
from quantlib.quantizers import Quantizer
from quantlib.quantizers import format_ops as FO
from quantlib.quantizers.functional import fake_quantize_broadcast


def error_decomposition(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                        bit_type: BitType, axis: int = 0, *, block_size: int | None = None,
                        tensor_scale: torch.Tensor | None = None) -> dict:
    """Split the fake-quant MSE of ``x`` into clipping (overload) and rounding (granular) parts.

    An element is clipped when it lies over half a step beyond the representable range
    [(qmin - zp) * s, (qmax - zp) * s] (float formats: over half the top grid step beyond
    max_finite * s), so its error comes from clamping, not rounding. ``scale``/``zero_point``
    are [1], [C] along ``axis``, or block scales [..., D/N] with ``block_size`` N (NVFP4 with
    its ``tensor_scale``). Per-channel arrays are [C] along ``axis`` (C = 1 for a per-tensor
    ``scale``). Also returns the theoretical rounding MSE mean(s^2 / 12) and RMSE / scale
    (about 0.29 when the error is rounding only); both NaN for float formats.
    """
    x = x.detach().float()
    if block_size is None and not bit_type.is_float:
        channels = as_channels(x, axis) if scale.numel() > 1 else x.reshape(1, -1)  # [C, N]
        s, z = scale.reshape(-1, 1), zero_point.reshape(-1, 1)
        sq = (fake_quantize_broadcast(channels, s, z, bit_type) - channels).double().pow(2)
        clipped = _clamped(channels, s, z, bit_type)
    else:
        quantizer = Quantizer(bit_type, axis, block_size)
        quantizer.update_quantization_params(scale, zero_point, tensor_scale)
        err = (quantizer(x) - x).double().pow(2)
        per_channel = block_size is not None or scale.numel() > 1
        rows = (lambda t: as_channels(t, axis)) if per_channel else (lambda t: t.reshape(1, -1))
        sq, clipped = rows(err), rows(quantizer.clipped_mask(x))
    n_per_channel = sq.shape[1]
    clip_c = torch.where(clipped, sq, 0.0).sum(1) / n_per_channel
    round_c = torch.where(clipped, 0.0, sq).sum(1) / n_per_channel
    total_c = sq.sum(1) / n_per_channel
    total = float(total_c.mean())
    uniform = not bit_type.is_float
    theory = float((scale.double() ** 2 / 12).mean()) if uniform else math.nan
    return {
        "total_mse": total,
        "clipping_mse": float(clip_c.mean()),
        "rounding_mse": float(round_c.mean()),
        "theoretical_rounding_mse": theory,
        "rmse_over_scale": math.sqrt(total) / float(scale.double().mean()) if uniform
        else math.nan,
        "clip_fraction": int(torch.count_nonzero(clipped)) / clipped.numel(),
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
    FP8 uses scale t / max_finite on its own grid; MX and NVFP4 raise ValueError.
    """
    if bit_type.family in ("mx", "nvfp4"):
        raise ValueError(f"the clip-threshold curve does not apply to {bit_type.name}: its "
                         "scales come from each block's amax, not from a clip threshold; it "
                         "applies to integer and fp8 formats")
    flat = x.detach().float().reshape(1, -1)
    n = flat.shape[1]
    x_min, x_max = float(flat.min()), float(flat.max())
    amax = max(abs(x_min), abs(x_max), torch.finfo(torch.float32).eps)
    thresholds = torch.linspace(amax / num_points, amax, num_points, dtype=torch.float32,
                                device=flat.device)
    if n > 16 * SUMMARY_BINS:
        values, weights = histogram_summary(flat, SUMMARY_BINS)
    else:
        values, weights = flat, None
    if symmetric:
        lo_range, hi_range = -thresholds, thresholds
    else:
        lo_range = torch.clamp(-thresholds, min=min(x_min, 0.0))
        hi_range = torch.clamp(thresholds, max=max(x_max, 0.0))
    scale, zero = FO.range_to_qparams(lo_range, hi_range, bit_type, symmetric)  # [P]
    deq = FO.fake_quantize_any(values, scale.unsqueeze(1), zero.unsqueeze(1), bit_type)
    sq = (deq - values).double().pow(2)  # [P, B]
    if weights is not None:
        sq = sq * weights
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


def follow_value(x: float, scale: float, zero_point: int, bit_type: BitType, *,
                 tensor_scale: float | None = None) -> dict:
    """One value through the quantizer, step by step, in the same float32 arithmetic as the
    kernels: x -> x*(1/s) -> round -> +zp -> clamp -> (q - zp)*s -> error.

    Float formats: ``scaled`` is x / s (MX: s floored at 2^-126; NVFP4: x * ((1 / tensor_scale)
    / s) with its ``tensor_scale``), ``rounded`` the nearest element (ties to even, saturating
    at max_finite; also under ``element``), ``code`` its signed grid index, ``clamped`` whether
    |scaled| was beyond max_finite, and ``inv_scale`` 1 / (the element unit's value).
    """
    xt = torch.tensor([x], dtype=torch.float32)
    st = torch.tensor([scale], dtype=torch.float32)
    if bit_type.is_float:
        ts = None if tensor_scale is None else torch.tensor(tensor_scale, dtype=torch.float32)
        zero = torch.zeros(1, dtype=torch.int64)
        unit = FO.effective_scale(st, bit_type, ts)
        if bit_type.family == "nvfp4":
            scaled = xt * ((1.0 / ts) / st)
        elif bit_type.family == "mx" and bit_type.format.element is not None:
            scaled = xt / torch.clamp(st, min=2.0**-126)
        else:
            scaled = xt / st
        element = FO.quantize_elements(xt, st, zero, bit_type, ts)
        deq = FO.scale_elements(element, st, zero, bit_type, ts)
        top = bit_type.format.max_finite
        code = int(FO.quantize_any(xt, st, zero, bit_type, ts))
        return {"x": float(xt), "inv_scale": float(torch.reciprocal(unit)),
                "scaled": float(scaled), "rounded": float(element), "element": float(element),
                "plus_zero_point": float(element), "code": code,
                "clamped": bool(abs(float(scaled)) > top), "dequantized": float(deq),
                "error": float(deq - xt)}
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


def qparams_by_bits(observer, bit_types, known=None, step=None) -> list:
    """The qparams ``observer`` gives at each of ``bit_types``, from the data it already holds.

    Observers whose range ignores the bit width compute it once; clip searches (OMSE, KL) run
    per width on their stored values. ``known`` maps a bit width to qparams already computed
    (the config's own width), reused as they are. ``step(i)`` is called before each width.
    """
    known = known or {}
    config = observer.config
    value_range = None
    out = []
    for index, bit_type in enumerate(bit_types):
        if step is not None:
            step(index)
        if bit_type.bits in known and bit_type.signed == config.bit_type.signed:
            out.append(known[bit_type.bits])
        elif not observer.range_depends_on_bits:
            if value_range is None:
                value_range = observer.compute_range()
            out.append(FO.range_to_qparams(*value_range, bit_type, config.is_symmetric))
        else:
            out.append(observer.with_bit_type(bit_type).get_quantization_params())
    return out


def sweep_bit_widths(layer, eval_x: torch.Tensor, bits_list=range(2, 9),
                     progress=None) -> dict:
    """Weight and output QSNR of a calibrated `QuantLinear` at each bit width (weight and
    output both at b bits, signedness kept), without recalibrating: the observers re-derive
    qparams from the data they already hold. Equals building the layer at b bits and running
    ``eval_x`` through it. ``progress(fraction, text)`` reports each step.

    Returns lists over ``bits``: weight_qsnr, output_qsnr (dB).
    """
    report = progress or (lambda fraction, text: None)
    bits_list = list(bits_list)
    w_cfg, o_cfg = layer.weight_config, layer.out_config
    for what, cfg in (("weight", w_cfg), ("output", o_cfg)):
        if cfg.bit_type.is_float:
            raise ValueError(f"the bit-width sweep varies integer widths; the {what}'s "
                             f"{cfg.bit_type.name} has a fixed element width (compare formats "
                             "by bits per element instead)")
    w_types = [BitType(b, w_cfg.bit_type.signed) for b in bits_list]
    o_types = [BitType(b, o_cfg.bit_type.signed) for b in bits_list]
    share = 0.45 / max(len(bits_list), 1)
    w_params = qparams_by_bits(
        layer.weight_observer, w_types, {w_cfg.bit_type.bits: (layer.weight_scaler,
                                                               layer.weight_zero)},
        lambda i: report(i * share, f"weight qparams at {bits_list[i]} bits"))
    o_params = qparams_by_bits(
        layer.output_observer, o_types, {o_cfg.bit_type.bits: (layer.output_scaler,
                                                               layer.output_zero)},
        lambda i: report(0.45 + i * share, f"output qparams at {bits_list[i]} bits"))
    report(0.9, "scoring each width on the held-out batch")
    out = {"bits": bits_list, "weight_qsnr": [], "output_qsnr": []}
    with torch.no_grad():
        x = eval_x.float()
        reference = F.linear(x, layer.weight, layer.bias)
        x_q = x if layer.input_quantizer is None else layer.input_quantizer(x)
        w_signal, o_signal = _energy(layer.weight), _energy(reference)
        for w_type, w_qparams, o_type, o_qparams in zip(w_types, w_params, o_types, o_params):
            deq_w = _like(layer.weight_quantizer, w_type, w_qparams)(layer.weight)
            y = _like(layer.output_quantizer, o_type, o_qparams)(F.linear(x_q, deq_w, layer.bias))
            out["weight_qsnr"].append(qsnr_db(w_signal, _energy(deq_w - layer.weight)))
            out["output_qsnr"].append(qsnr_db(o_signal, _energy(y - reference)))
    return out


def _like(quantizer: Quantizer, bit_type: BitType, qparams) -> Quantizer:
    """A quantizer of ``quantizer``'s granularity at ``bit_type`` holding ``qparams``."""
    clone = Quantizer(bit_type, quantizer.channel_axis, quantizer.block_size,
                      quantizer.dynamic, quantizer.symmetric)
    clone.update_quantization_params(*qparams)
    return clone


def _clamped(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
             bit_type: BitType) -> torch.Tensor:
    """True where x lies over half a step beyond the representable range (broadcasting), the
    profiler's definition of clipped."""
    scale = scale.float()
    lo, hi = FO.representable_range(scale, zero_point, bit_type)
    return beyond_half_step(x, lo, hi, FO.edge_step(scale, bit_type))


def _energy(t: torch.Tensor) -> float:
    """sum of squares, accumulated in float64."""
    return float(t.double().pow(2).sum())
