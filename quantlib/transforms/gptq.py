"""GPTQ (Frantar et al., 2022): quantize a weight column by column, feeding each column's
rounding error forward onto the columns not yet quantized, weighted by the inverse Hessian.

For W [out, in] and calibration inputs X [tokens, in]:

1. ``H = 2 X^T X / tokens``; a dead input (H_jj = 0) gets H_jj = 1 and W[:, j] = 0; then
   ``damp * mean(diag H)`` is added to the diagonal.
2. ``U`` = the upper Cholesky factor of ``H^-1``.
3. For each column j (in order, or by descending H_jj with ``act_order``):
   ``q_j = quant(w_j)``, ``e = (w_j - q_j) / U_jj``, ``W[:, k] -= e U_jk`` for k > j.
   The updates are applied lazily: inside a block of ``block`` columns immediately, to the
   columns after the block in one matmul once the block is done (same result, fast).

Scales (see ``weight_quant``): per tensor / per channel they come from the original W, as in
the reference implementation. Block-wise, a group's scale is computed when the loop first
reaches one of its columns, from the group's current (error-updated) values, as the reference
does with ``static_groups=False``. Groups are always consecutive input columns of the
*original* order (the formats' blocks), also with ``act_order``; then a group's columns are
visited out of order and its scale is fixed at the first of them, from values that include
every update so far (pending lazy updates are applied to them first).
"""

from __future__ import annotations

import torch

from quantlib.transforms.control import Cancel, Progress, check, report
from quantlib.transforms.weight_quant import WeightFormat, WeightQuantizer

DAMP_RETRIES = (1.0, 10.0, 100.0, 1000.0)


def gptq_hessian(calib_x: torch.Tensor) -> torch.Tensor:
    """``H = 2 X^T X / tokens`` [in, in] float32 from ``calib_x`` [..., in]."""
    x = calib_x.detach().float().reshape(-1, calib_x.shape[-1])
    if x.shape[0] == 0:
        raise ValueError("GPTQ needs at least one calibration token, got none")
    return (x.T @ x) * (2.0 / x.shape[0])


def inverse_hessian_factor(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """The upper Cholesky factor U of ``(H + damp * mean(diag H) I)^-1`` [in, in].

    When H is numerically not positive definite, damp is raised 10x, up to 1000x, before
    giving up with a ValueError (that suggests more tokens or a larger damp)."""
    diag_mean = torch.diagonal(hessian).mean()
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    for factor in DAMP_RETRIES:
        lower, info = torch.linalg.cholesky_ex(hessian + eye * (damp * factor * diag_mean))
        if info == 0:
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
            if info == 0:
                return upper
    raise ValueError(f"GPTQ: the Hessian 2 X^T X / n is not positive definite even with "
                     f"damp={damp * DAMP_RETRIES[-1]:g}; give more calibration tokens or a "
                     "larger gptq.damp")


def gptq_quantize(weight: torch.Tensor, calib_x: torch.Tensor | None, fmt: WeightFormat, *,
                  hessian: torch.Tensor | None = None, damp: float = 0.01, block: int = 128,
                  act_order: bool = False, progress: Progress | None = None,
                  cancel: Cancel | None = None) -> torch.Tensor:
    """The GPTQ-quantized (dequantized) weight, [out, in] float32, in the original column order.

    - ``weight`` [out, in]; ``calib_x`` [..., in] (or pass ``hessian`` [in, in] instead);
    - ``fmt``: the weight format (int per channel / block-wise, FP8, MX, NVFP4);
    - ``damp``: fraction of mean(diag H) added to the diagonal; ``block``: lazy-update width
      (a speed knob only); ``act_order``: visit columns by descending H_jj;
    - ``progress``/``cancel``: see ``quantlib.transforms.control``; raises
      ``TransformCancelled`` when cancelled.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [out, in], got shape {tuple(weight.shape)}")
    out_features, n = weight.shape
    if hessian is None:
        if calib_x is None:
            raise ValueError("GPTQ needs calib_x or a precomputed hessian")
        hessian = gptq_hessian(calib_x)
    if hessian.shape != (n, n):
        raise ValueError(f"hessian must be [{n}, {n}] for a weight of shape "
                         f"{tuple(weight.shape)}, got {tuple(hessian.shape)}")
    report(progress, 0.0)
    check(cancel, "GPTQ", 0.0)
    original = weight.detach().float()
    quantizer = WeightQuantizer(fmt, original)
    group = quantizer.group
    n_groups = n // group
    params: list = [None] * n_groups
    if fmt.granularity != "block":  # one group: the scales come from the original W
        params[0] = quantizer.group_params(original)

    w = original.clone()
    h = hessian.detach().float().clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    if act_order:
        perm = torch.argsort(torch.diagonal(h), descending=True, stable=True)
        w, h = w[:, perm], h[perm][:, perm]
    else:
        perm = torch.arange(n)
    position = torch.empty_like(perm)
    position[perm] = torch.arange(n)
    u = inverse_hessian_factor(h, damp)
    group_of = (perm // group).tolist()
    q = torch.zeros_like(w)

    for i1 in range(0, n, block):
        check(cancel, "GPTQ", i1 / n)
        i2 = min(i1 + block, n)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            g = group_of[i1 + i]
            if params[g] is None:
                cols = position[g * group:(g + 1) * group]
                params[g] = quantizer.group_params(
                    _current_values(cols, i1, i2, w, w1, err1[:, :i], u[i1:i1 + i]))
            col = w1[:, i:i + 1]
            qcol = quantizer.quantize(col, params[g])
            q[:, i1 + i:i1 + i + 1] = qcol
            err = (col - qcol) / u1[i, i]
            w1[:, i:].addmm_(err, u1[i:i + 1, i:], alpha=-1.0)
            err1[:, i:i + 1] = err
        if i2 < n:
            w[:, i2:].addmm_(err1, u[i1:i2, i2:], alpha=-1.0)
        report(progress, i2 / n)
    return q[:, position]


def _current_values(cols: torch.Tensor, i1: int, i2: int, w: torch.Tensor, w1: torch.Tensor,
                    err_done: torch.Tensor, u_done: torch.Tensor) -> torch.Tensor:
    """The up-to-date values [out, len(cols)] of permuted columns ``cols`` (all not yet
    quantized): from the block being worked on ``w1`` when inside [i1, i2), else from ``w``
    minus the block's pending update ``err_done @ u_done[:, cols]``."""
    first, last = int(cols.min()), int(cols.max())
    if last < i2 and last - first + 1 == len(cols) and bool((cols[1:] > cols[:-1]).all()):
        return w1[:, first - i1:last - i1 + 1]  # the common case: consecutive, in the block
    inside = cols < i2
    values = torch.empty(w.shape[0], len(cols), dtype=w.dtype)
    values[:, inside] = w1[:, cols[inside] - i1]
    outside = cols[~inside]
    values[:, ~inside] = w[:, outside] - err_done @ u_done[:, outside]
    return values
