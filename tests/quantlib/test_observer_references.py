"""KL and OMSE against independent references written here: a loop KL over every cut on a
numpy histogram, and a plain element-wise OMSE score from torch's fake quantization."""

import numpy as np
import pytest
import torch

import quantlib.observers.kl as kl
from quantlib.bit_type import BitType
from quantlib.observers import build_observer
from quantlib.observers.omse import sorted_prefix_sums, squared_error_sorted
from quantlib.quant_config import QuantConfig
from quantlib.quantizers import calculate_qparams
from tests.quantlib.test_observers import reference_kl_threshold_bin


def config(observer, method="Uniform", bits=4, mode="layer_wise", **kw) -> QuantConfig:
    return QuantConfig(calibration_mode=mode, bit_type=BitType(bits, True),
                       observer_type=observer, quantization_method=method, **kw)


def numpy_abs_histogram(x: np.ndarray, bins: int) -> tuple[np.ndarray, float]:
    mag = np.abs(x.astype(np.float32))
    amax = float(mag.max())
    per_unit = np.float32(bins) / np.float32(amax)
    idx = np.minimum((mag * per_unit).astype(np.int64), bins - 1)
    return np.bincount(idx, minlength=bins), amax


def kl_threshold(x: torch.Tensor, cfg: QuantConfig) -> float:
    obs = build_observer(cfg)
    obs.update(x)
    lo, hi = obs.compute_range()
    return max(-float(lo), float(hi))  # range = [max(min, -t), min(max, t)]


def test_kl_one_sided_affine_uses_every_level():
    """Non-negative data under Affine spends all 2**b levels on [0, t] (TensorRT's unsigned
    rule); symmetric data or Uniform spend half."""
    gen = torch.Generator().manual_seed(31)
    x = torch.randn(30_000, generator=gen).abs().pow(1.7)
    bins = 256
    hist, amax = numpy_abs_histogram(x.numpy(), bins)
    full, half = reference_kl_threshold_bin(hist, 16), reference_kl_threshold_bin(hist, 8)
    assert full != half  # the test can tell the two rules apart
    affine = kl_threshold(x, config("KLObserver", "Affine", 4, kl_bins=bins))
    uniform = kl_threshold(x, config("KLObserver", "Uniform", 4, kl_bins=bins))
    assert affine == pytest.approx(amax * full / bins, rel=1e-6)
    assert uniform == pytest.approx(amax * half / bins, rel=1e-6)
    # the same values with both signs: half the levels per side, under Affine too
    two_sided = torch.cat([x, -x[:5]])
    hist2, amax2 = numpy_abs_histogram(two_sided.numpy(), bins)
    assert kl_threshold(two_sided, config("KLObserver", "Affine", 4, kl_bins=bins)) == \
        pytest.approx(amax2 * reference_kl_threshold_bin(hist2, 8) / bins, rel=1e-6)


@pytest.mark.parametrize("coarse", [False, True], ids=["every-cut", "coarse-to-fine"])
def test_kl_ties_go_to_the_last_minimum(coarse, monkeypatch):
    """Two cuts with exactly the same (least) KL: the wider one wins, as ModelOpt's
    ``len - 1 - argmin(reversed)``; checked on every search path."""
    bins, nq = 2048, 8
    tied = (600, 1500)
    real = kl.kl_divergence_by_threshold

    def table_kl(hist, num_quant_bins, kept=None, edges=None):
        out = real(hist, num_quant_bins, kept, edges).abs() + 1.0
        return torch.where((kept == tied[0]) | (kept == tied[1]), 0.0, out)

    monkeypatch.setattr(kl, "kl_divergence_by_threshold", table_kl)
    if not coarse:
        monkeypatch.setattr(kl, "_WORK_BUDGET", 2**40)
    else:  # 64 evenly spaced cuts first: make both tied cuts coarse candidates
        monkeypatch.setattr(kl, "_WORK_BUDGET", 1)
    gen = torch.Generator().manual_seed(32)
    x = torch.rand(200_000, generator=gen) * 2 - 1  # every bin non-empty: all cuts useful
    x[0] = 1.0
    obs = build_observer(config("KLObserver", "Uniform", 4, kl_bins=bins))
    obs.update(x)
    if coarse:  # the coarse grid over cuts 8..2048 (2041 cuts): pick tied cuts on it
        grid = (torch.arange(64, dtype=torch.float64) * 2040 / 63).round().long() + nq
        tied = (int(grid[18]), int(grid[46]))
    threshold = obs.compute_threshold(obs.observed_values())
    assert float(threshold) == pytest.approx(float(x.abs().max()) * tied[1] / bins, rel=1e-6)


@pytest.mark.parametrize("n,kl_bins,expected", [(4000, 2048, 500), (40_000, 2048, 2048),
                                                 (100, 2048, 16)],
                         ids=["n/8", "kl_bins", "2-per-step"])
def test_kl_effective_bins_rule(n, kl_bins, expected):
    """bins = min(kl_bins, max(2 * nq, N // 8)): the threshold lies on that histogram's
    grid and equals the loop reference on it."""
    gen = torch.Generator().manual_seed(33)
    x = torch.randn(n, generator=gen) * torch.rand(n, generator=gen).add(0.2)
    cfg = config("KLObserver", "Uniform", 4, kl_bins=kl_bins)  # nq = 8
    obs = build_observer(cfg)
    obs.update(x)
    assert obs.effective_bins(n, 8) == expected
    hist, amax = numpy_abs_histogram(x.numpy(), expected)
    ref = amax * reference_kl_threshold_bin(hist, 8) / expected
    assert kl_threshold(x, cfg) == pytest.approx(ref, rel=1e-6)
    if expected != kl_bins:  # the rule matters: kl_bins itself would choose differently
        hist_all, _ = numpy_abs_histogram(x.numpy(), kl_bins)
        assert abs(amax * reference_kl_threshold_bin(hist_all, 8) / kl_bins - ref) > amax / kl_bins


# --- OMSE ------------------------------------------------------------------------------------


def elementwise_sq_error(x: torch.Tensor, lo: float, hi: float, bt: BitType,
                         symmetric: bool) -> float:
    """Sum of squared fake-quantization error, element by element, via torch's own op."""
    scale, zero = calculate_qparams(torch.tensor([lo]), torch.tensor([hi]), bt, symmetric)
    out = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero), bt.qmin, bt.qmax)
    return float((out.double() - x.double()).square().sum())


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
@pytest.mark.parametrize("bits", [3, 4, 6])
def test_omse_sorted_prefix_route_equals_elementwise_score(method, bits):
    """The sorted-prefix route's error at every ratio equals the element-wise sum (a decision
    boundary off by 0.05 of a step changes it by percents; float64 prefix sums agree to
    ~1e-7)."""
    gen = torch.Generator().manual_seed(34)
    x = (torch.randn(2, 20_000, generator=gen) * 1.3 + 0.4)
    x[1] = x[1].abs().pow(1.5)
    bt = BitType(bits, True)
    symmetric = method == "Uniform"
    ordered, prefix, prefix_sq = sorted_prefix_sums(x)
    ratios = torch.linspace(0.05, 1.0, 40)
    lo, hi = x.amin(1), x.amax(1)
    ours = squared_error_sorted(ordered, prefix, prefix_sq, lo, hi, ratios, bt, symmetric)
    for c in range(2):
        for r_index, r in enumerate(ratios.tolist()):
            ref = elementwise_sq_error(x[c], float(lo[c] * r), float(hi[c] * r), bt, symmetric)
            assert float(ours[r_index, c]) == pytest.approx(ref, rel=1e-6)


def test_omse_observer_picks_the_plain_elementwise_optimum():
    """The observer (sorted route: N >= 3 * 2**bits) keeps the ratio a plain loop over all
    ``omse_steps`` ratios would keep (last minimum on ties)."""
    gen = torch.Generator().manual_seed(35)
    x = torch.randn(3, 5000, generator=gen) * torch.tensor([[0.5], [1.0], [3.0]])
    x[2, :10] *= 6
    steps = 50
    bt = BitType(4, True)
    obs = build_observer(config("OmseObserver", "Affine", 4, mode="channel_wise",
                                omse_steps=steps))
    obs.update(x)
    lo, hi = obs.compute_range()
    for c in range(3):
        mn, mx = float(x[c].min()), float(x[c].max())
        errors = [elementwise_sq_error(x[c], mn * (i / steps), mx * (i / steps), bt, False)
                  for i in range(1, steps + 1)]
        best = len(errors) - 1 - int(np.argmin(errors[::-1]))
        ratio = torch.tensor((best + 1) / steps, dtype=torch.float32)
        assert float(hi[c]) == float(torch.tensor(mx) * ratio)
        assert float(lo[c]) == float(torch.tensor(mn) * ratio)
