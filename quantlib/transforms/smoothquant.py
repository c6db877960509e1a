"""SmoothQuant (Xiao et al., 2023): migrate activation outliers into the weight.

For a linear layer y = x W^T + b with W [out, in] and calibration inputs X [tokens, in]:

    s_j = max|X_:,j|^alpha / max|W_:,j|^(1 - alpha)          (one per input channel j)
    x' = x diag(1/s),  W' = W diag(s)   =>   x' W'^T = x W^T  (exact up to fp32 rounding)

A channel whose activation or weight column is all zero gets s_j = 1, and s is clamped to
[1e-5, 1e5] so both x/s and W*s stay finite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

SCALE_MIN, SCALE_MAX = 1e-5, 1e5
DEFAULT_CURVE_POINTS = 21

Quantize = Callable[[torch.Tensor], torch.Tensor]


def channel_absmax(x: torch.Tensor) -> torch.Tensor:
    """max|x| per input channel: x [..., in] -> [in] float32 (a weight [out, in] works too)."""
    return x.detach().float().reshape(-1, x.shape[-1]).abs().amax(dim=0)


def smoothquant_scales(act_absmax: torch.Tensor, weight_absmax: torch.Tensor,
                       alpha: float | torch.Tensor) -> torch.Tensor:
    """The smoothing factors s from per-channel maxima ``act_absmax`` [in] and
    ``weight_absmax`` [in] (max over the weight's output rows of |W[:, j]|).

    ``alpha`` a float -> s [in]; ``alpha`` a tensor [A] -> s [A, in] (one row per alpha, in one
    vectorised pass, computed as exp(alpha log a - (1 - alpha) log w))."""
    a = act_absmax.float()
    w = weight_absmax.float()
    alpha_t = torch.as_tensor(alpha, dtype=torch.float32)
    live = (a > 0) & (w > 0) & torch.isfinite(a) & torch.isfinite(w)
    log_a = torch.where(live, a, 1.0).log()
    log_w = torch.where(live, w, 1.0).log()
    if alpha_t.dim() == 0:
        log_s = alpha_t * log_a - (1.0 - alpha_t) * log_w
    else:
        alpha_t = alpha_t[:, None]
        log_s = alpha_t * log_a[None] - (1.0 - alpha_t) * log_w[None]
    scales = torch.where(live, log_s.exp(), 1.0)
    return scales.clamp(SCALE_MIN, SCALE_MAX)


def smooth_layer(weight: torch.Tensor, calib_x: torch.Tensor, alpha: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W' = W diag(s) [out, in] float32, s [in]) for ``weight`` [out, in] and ``calib_x``
    [..., in]. Apply ``x / s`` to the layer's inputs."""
    scales = smoothquant_scales(channel_absmax(calib_x), channel_absmax(weight), alpha)
    return weight.float() * scales, scales


def output_qsnr(y: torch.Tensor, y_hat: torch.Tensor) -> float:
    """10 log10(sum y^2 / sum (y - y_hat)^2) in dB, float64; +inf when lossless."""
    signal = torch.linalg.vector_norm(y, dtype=torch.float64) ** 2
    noise = torch.linalg.vector_norm(y - y_hat, dtype=torch.float64) ** 2
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(signal / noise))


def default_alphas(points: int = DEFAULT_CURVE_POINTS) -> torch.Tensor:
    """``points`` evenly spaced alphas in [0, 1] (0, 0.05, ..., 1 for 21)."""
    return torch.linspace(0.0, 1.0, points)


def smoothquant_alpha_curve(weight: torch.Tensor, calib_x: torch.Tensor,
                            weight_quantize: Quantize | None = None,
                            act_quantize: Quantize | None = None,
                            alphas: Sequence[float] | torch.Tensor | None = None,
                            bias: torch.Tensor | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The output QSNR of the quantized, smoothed layer for each alpha.

    - ``weight`` [out, in], ``calib_x`` [..., in] (flattened to [tokens, in]), ``bias`` [out];
    - ``weight_quantize`` maps W' [out, in] to its fake-quantized copy, ``act_quantize`` maps
      x' [tokens, in] likewise (None: kept in fp32), e.g.
      ``lambda w: quantlib.formats.fake_quantize(w, "int8", axis=0)``;
    - ``alphas``: default ``default_alphas()`` (21 points in [0, 1]).

    Returns (alphas [A] float32, qsnr_db [A] float64), QSNR = 10 log10(sum y^2 / sum
    (y - y_hat)^2) with y the fp32 output and y_hat = q_a(x / s) q_w(W s)^T + b. Shared work
    (channel maxima, all scale rows at once, the fp32 reference y and its energy) is done once;
    each alpha costs one quantization of each tensor and one fused matmul-subtract.
    """
    alphas_t = default_alphas() if alphas is None else torch.as_tensor(alphas).float()
    x = calib_x.detach().float().reshape(-1, calib_x.shape[-1])
    w = weight.detach().float()
    y = x @ w.T  # without the bias: it cancels in y - y_hat
    y_full = y if bias is None else y + bias.detach().float()
    signal = torch.linalg.vector_norm(y_full, dtype=torch.float64) ** 2
    scales = smoothquant_scales(channel_absmax(x), channel_absmax(w), alphas_t)
    qsnr = torch.empty(len(alphas_t), dtype=torch.float64)
    for k in range(len(alphas_t)):
        s = scales[k]
        w_s = w * s
        x_s = x / s
        w_q = w_s if weight_quantize is None else weight_quantize(w_s)
        x_q = x_s if act_quantize is None else act_quantize(x_s)
        err = torch.addmm(y, x_q, w_q.T, alpha=-1.0)  # y - x_q w_q^T
        noise = torch.linalg.vector_norm(err, dtype=torch.float64) ** 2
        qsnr[k] = float("inf") if noise == 0 else 10 * torch.log10(signal / noise)
    return alphas_t, qsnr
