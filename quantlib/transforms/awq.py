"""AWQ (Lin et al., 2024): per-input-channel scales that protect the salient weights.

For W [out, in] and calibration inputs X [tokens, in], each alpha on the grid i / grid
(i = 0 .. grid - 1, so 0, 0.05, ..., 0.95 for 20 points) gives

    s = m^alpha / sqrt(max(m^alpha) * min(m^alpha)),   m_j = mean|X_:,j|  (clamped >= 1e-4 after
                                                      the power, as llm-awq does)
    W' = quant(W diag(s)),  x' = x diag(1/s)  (fp32)   =>   y_hat = x' W'^T

and the alpha with the lowest output MSE mean((X W^T - X diag(1/s) W'^T)^2) on the calibration
data is kept. alpha = 0 gives s = 1, i.e. round-to-nearest, so AWQ is never worse than RTN on
the calibration data (ties keep the smaller alpha). llm-awq's additional weight-clipping search
is not part of this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantlib.transforms.control import Cancel, Progress, check, report
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer

DEFAULT_GRID = 20
SCALE_FLOOR = 1e-4


@dataclass
class AWQResult:
    """The search's outcome: ``alpha`` (chosen), ``scales`` s [in] (apply ``x / s``),
    ``quantized_weight`` quant(W diag(s)) [out, in] dequantized, float32, ``alphas`` [grid]
    and ``mse`` [grid] float64 (calibration output MSE per alpha)."""

    alpha: float
    scales: torch.Tensor
    quantized_weight: torch.Tensor
    alphas: torch.Tensor
    mse: torch.Tensor


def awq_scales(act_mean_abs: torch.Tensor, alpha: float) -> torch.Tensor:
    """s [in] from mean|X_:,j| [in] for one alpha (see the module docstring)."""
    s = act_mean_abs.float().pow(alpha).clamp(min=SCALE_FLOOR)
    return s / torch.sqrt(s.max() * s.min())


def awq_search(weight: torch.Tensor, calib_x: torch.Tensor, fmt: WeightFormat, *,
               grid: int = DEFAULT_GRID, progress: Progress | None = None,
               cancel: Cancel | None = None) -> AWQResult:
    """Grid-search AWQ for ``weight`` [out, in] on ``calib_x`` [..., in] with weight format
    ``fmt``. The MSE uses the Gram matrix X^T X when there are more tokens than inputs (one
    [out, in] x [in, in] product per alpha), else X directly; sums are float64.
    ``progress``/``cancel``: see ``quantlib.transforms.control``."""
    x = calib_x.detach().float().reshape(-1, calib_x.shape[-1])
    w = weight.detach().float()
    if x.shape[0] == 0:
        raise ValueError("AWQ needs at least one calibration token, got none")
    fmt.group_size(w.shape[1])  # a clear error now when the block size does not divide in
    tokens = x.shape[0]
    gram = (x.T @ x) if tokens > x.shape[1] else None
    mean_abs = x.abs().mean(dim=0)
    alphas = torch.arange(grid, dtype=torch.float64) / grid
    mse = torch.empty(grid, dtype=torch.float64)
    best = (float("inf"), 0)
    best_q: torch.Tensor | None = None
    report(progress, 0.0)
    for k, alpha in enumerate(alphas.tolist()):
        check(cancel, "AWQ", k / grid)
        s = awq_scales(mean_abs, alpha)
        scaled = w * s  # scales from W diag(s) itself (also the per-tensor / NVFP4 ones)
        w_q = WeightQuantizer(fmt, scaled).quantize_all(scaled)
        diff = w - w_q / s  # the effective weight error [out, in]
        if gram is not None:
            total = ((diff @ gram) * diff).sum(dtype=torch.float64)
        else:
            total = torch.linalg.vector_norm(x @ diff.T, dtype=torch.float64) ** 2
        mse[k] = total / (tokens * w.shape[0])
        if mse[k] < best[0]:
            best, best_q = (float(mse[k]), k), w_q
        report(progress, (k + 1) / grid)
    k = best[1]
    return AWQResult(float(alphas[k]), awq_scales(mean_abs, float(alphas[k])), best_q,
                     alphas.float(), mse)

