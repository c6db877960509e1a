"""A plain-loop KL reference shared by the KLObserver tests (numpy, float64, one cut at a
time)."""

from __future__ import annotations

import numpy as np


def reference_kl(hist: np.ndarray, edges: np.ndarray, i: int) -> float:
    """KL(P || Q) for i bins kept, Q grouped by the grid: bin j in group k when level k <=
    j / i * max < level k + 1 (compared exactly, in integers)."""
    p = hist[:i].astype(np.float64)
    p[-1] += hist[i:].sum()
    group = np.searchsorted(edges * i, np.arange(i) * edges[-1], side="right") - 1
    q = np.zeros(i)
    for k in np.unique(group):
        members = group == k
        nonzero = members & (hist[:i] > 0)
        if nonzero.any():
            q[nonzero] = hist[:i][members].sum() / nonzero.sum()
    p, q = p / p.sum(), q / q.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(p > 0, p * np.log(p / q), 0.0).sum())
