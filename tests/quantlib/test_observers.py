"""Observers against torch.ao and against reference implementations written here."""

import math

import numpy as np
import pytest
import torch
from torch.ao.quantization import observer as ao

from quantlib.bit_type import BitType
from quantlib.observers import OBSERVER_REGISTRY, build_observer
from quantlib.observers.kl import abs_histogram, kl_divergence_by_threshold
from quantlib.quant_config import OBSERVER_TYPES, QuantConfig
from quantlib.quantizers import calculate_qparams, fake_quantize
from tests.quantlib.kl_reference import reference_kl


def make_config(observer="MinmaxObserver", mode="layer_wise", method="Uniform", bits=8,
                signed=True, **kw) -> QuantConfig:
    return QuantConfig(calibration_mode=mode, bit_type=BitType(bits, signed),
                       observer_type=observer, quantization_method=method, **kw)


def qsnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    x, x_hat = x.double(), x_hat.double()
    return 10 * math.log10(x.pow(2).sum() / (x - x_hat).pow(2).sum())


AO_CASES = [
    ("layer_wise", "Uniform", True, torch.qint8, torch.per_tensor_symmetric),
    ("layer_wise", "Uniform", False, torch.quint8, torch.per_tensor_symmetric),
    ("layer_wise", "Affine", True, torch.qint8, torch.per_tensor_affine),
    ("layer_wise", "Affine", False, torch.quint8, torch.per_tensor_affine),
    ("channel_wise", "Uniform", True, torch.qint8, torch.per_channel_symmetric),
    ("channel_wise", "Uniform", False, torch.quint8, torch.per_channel_symmetric),
    ("channel_wise", "Affine", True, torch.qint8, torch.per_channel_affine),
    ("channel_wise", "Affine", False, torch.quint8, torch.per_channel_affine),
]


@pytest.mark.parametrize("mode,method,signed,dtype,qscheme", AO_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'int8' if c[2] else 'uint8'}" for c in AO_CASES])
def test_minmax_matches_torch_ao(mode, method, signed, dtype, qscheme):
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(16, 24, generator=gen) * 2 + 0.7 for _ in range(3)]
    if mode == "layer_wise":
        ref = ao.MinMaxObserver(dtype=dtype, qscheme=qscheme)
    else:
        ref = ao.PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=qscheme)
    ours = build_observer(make_config("MinmaxObserver", mode, method, 8, signed), channel_axis=0)
    for b in batches:
        ref(b)
        ours.update(b)
    ref_scale, ref_zero = ref.calculate_qparams()
    scale, zero = ours.get_quantization_params()
    assert torch.equal(scale, ref_scale.float().reshape(scale.shape))
    assert torch.equal(zero, ref_zero.to(torch.int64).reshape(zero.shape))


def test_ema_matches_torch_ao_moving_average():
    gen = torch.Generator().manual_seed(2)
    ref = ao.MovingAverageMinMaxObserver(averaging_constant=0.25, dtype=torch.quint8,
                                         qscheme=torch.per_tensor_affine)
    ours = build_observer(make_config("EmaMinmaxObserver", method="Affine", signed=False,
                                      ema_momentum=0.75))
    for _ in range(5):
        b = torch.randn(64, generator=gen) * 3
        ref(b)
        ours.update(b)
    ref_scale, ref_zero = ref.calculate_qparams()
    scale, zero = ours.get_quantization_params()
    torch.testing.assert_close(scale, ref_scale.reshape(1), rtol=1e-6, atol=0)
    assert abs(int(zero) - int(ref_zero)) <= 1


@pytest.mark.parametrize("observer", OBSERVER_TYPES)
@pytest.mark.parametrize("mode", ["layer_wise", "channel_wise"])
@pytest.mark.parametrize("method", ["Uniform", "Affine"])
def test_every_observer_gives_valid_qparams(observer, mode, method):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(8, 500, generator=gen) * torch.linspace(0.1, 4, 8).unsqueeze(1)
    obs = build_observer(make_config(observer, mode, method, bits=4), channel_axis=0)
    obs.update(x[:, :250])
    obs.update(x[:, 250:])
    scale, zero = obs.get_quantization_params()
    channels = 8 if mode == "channel_wise" else 1
    assert scale.shape == zero.shape == (channels,)
    assert scale.dtype == torch.float32 and zero.dtype == torch.int64
    assert bool(torch.isfinite(scale).all() and (scale > 0).all())
    assert bool((zero >= -8).all() and (zero <= 7).all())
    lo, hi = obs.compute_range()
    mins = x.amin(1) if mode == "channel_wise" else x.min().reshape(1)
    maxs = x.amax(1) if mode == "channel_wise" else x.max().reshape(1)
    assert bool((lo >= mins - 1e-6).all() and (hi <= maxs + 1e-6).all())


@pytest.mark.parametrize("observer", OBSERVER_TYPES)
@pytest.mark.parametrize("fill", [0.0, 3.5], ids=["zeros", "constant"])
def test_degenerate_tensors_give_finite_qparams(observer, fill):
    for method in ("Uniform", "Affine"):
        obs = build_observer(make_config(observer, "channel_wise", method), channel_axis=0)
        x = torch.full((4, 100), fill)
        obs.update(x)
        scale, zero = obs.get_quantization_params()
        assert bool(torch.isfinite(scale).all() and (scale > 0).all())
        out = fake_quantize(x, scale, zero, obs.bit_type, 0)
        assert bool(torch.isfinite(out).all())
        assert (out - x).abs().max() <= max(fill, 1e-6) * 0.01


def test_unknown_observer_lists_choices():
    cfg = make_config()
    cfg.observer_type = "HistObserver"
    with pytest.raises(ValueError, match="MinmaxObserver, EmaMinmaxObserver"):
        build_observer(cfg)


def test_registry_holds_every_configurable_observer():
    assert set(OBSERVER_REGISTRY) == set(OBSERVER_TYPES)


def test_non_finite_input_is_refused_with_the_tensor_name():
    obs = build_observer(make_config(), name="layer1.output")
    with pytest.raises(ValueError, match="layer1.output.*NaN or Inf"):
        obs.update(torch.tensor([1.0, float("nan")]))


def test_get_params_before_update_says_what_to_do():
    with pytest.raises(RuntimeError, match="update"):
        build_observer(make_config()).get_quantization_params()


# --- Percentile -----------------------------------------------------------------------------


def test_percentile_ignores_rare_outliers():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(200_000, generator=gen)
    outliers = torch.randperm(x.numel(), generator=gen)[:200]  # 0.1%
    x[outliers] = 1000.0
    obs = build_observer(make_config("PercentileObserver", percentile_alpha=0.998))
    obs.update(x)
    lo, hi = obs.compute_range()
    assert float(hi) < 5.0 and float(lo) > -5.0
    minmax = build_observer(make_config("MinmaxObserver"))
    minmax.update(x)
    assert float(minmax.compute_range()[1]) == 1000.0


def test_percentile_matches_numpy_across_batches():
    gen = torch.Generator().manual_seed(5)
    batches = [torch.randn(3, 1000, generator=gen, dtype=torch.float32) for _ in range(4)]
    obs = build_observer(make_config("PercentileObserver", "channel_wise",
                                     percentile_alpha=0.99), channel_axis=0)
    for b in batches:
        obs.update(b)
    lo, hi = obs.compute_range()
    data = torch.cat(batches, dim=1).double().numpy()
    np.testing.assert_allclose(hi.numpy(), np.quantile(data, 0.99, axis=1), rtol=1e-6)
    np.testing.assert_allclose(lo.numpy(), np.quantile(data, 0.01, axis=1), rtol=1e-6)


@pytest.mark.slow
def test_percentile_works_past_torch_quantile_limit():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(20_000_000, generator=gen)
    with pytest.raises(RuntimeError):
        torch.quantile(x, 0.999)  # torch refuses > 16M elements
    obs = build_observer(make_config("PercentileObserver", percentile_alpha=0.999))
    obs.update(x)
    lo, hi = obs.compute_range()
    expected = np.quantile(x.numpy(), [0.001, 0.999])
    np.testing.assert_allclose([float(lo), float(hi)], expected, rtol=1e-6)


# --- OMSE -----------------------------------------------------------------------------------


def test_omse_is_close_to_brute_force_best_clip_at_4_bits():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(100_000, generator=gen)
    bt = BitType(4, True)
    obs = build_observer(make_config("OmseObserver", bits=4))
    obs.update(x)
    scale, zero = obs.get_quantization_params()
    ours = qsnr(x, fake_quantize(x, scale, zero, bt))
    amax = float(x.abs().max())
    best = -math.inf
    for t in np.linspace(0.2, 1.0, 801) * amax:
        s, z = calculate_qparams(torch.tensor([-t]), torch.tensor([t]), bt, True)
        best = max(best, qsnr(x, fake_quantize(x, s, z, bt)))
    assert ours >= best - 0.15
    minmax_scale, minmax_zero = calculate_qparams(x.min().reshape(1), x.max().reshape(1), bt, True)
    assert ours > qsnr(x, fake_quantize(x, minmax_scale, minmax_zero, bt)) + 1.0


# --- KL ---------------------------------------------------------------------------------------


def reference_kl_threshold_bin(hist: np.ndarray, nq: int) -> int:
    """Straightforward entropy calibration: loop over every candidate bin count i (an empty
    quantized distribution scores NaN and never wins); the last minimum wins."""
    best_i, best_kl = None, math.inf
    uniform_edges = np.arange(nq + 1)  # group k: bins j with k <= j * nq / i < k + 1
    for i in range(nq, len(hist) + 1):
        kl = reference_kl(hist, uniform_edges, i)
        if kl <= best_kl:  # last minimum, like ModelOpt
            best_i, best_kl = i, kl
    return best_i


@pytest.mark.parametrize("shape", ["gaussian", "heavy_tail", "outliers"])
def test_kl_threshold_within_one_bin_of_reference(shape):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(50_000, generator=gen)
    if shape == "heavy_tail":
        x = x.sign() * x.abs().pow(3)
    elif shape == "outliers":
        x[:20] *= 40
    bins = 256
    cfg = make_config("KLObserver", bits=6, kl_bins=bins)
    obs = build_observer(cfg)
    obs.update(x)
    hist, amax = abs_histogram(x.reshape(1, -1), bins)
    nq = obs.num_quant_bins()
    ref_i = reference_kl_threshold_bin(hist[0].numpy(), nq)
    _, hi = obs.compute_range()
    our_i = round(float(hi) / float(amax) * bins)
    assert abs(our_i - ref_i) <= 1


def test_kl_divergences_equal_reference_values():
    gen = torch.Generator().manual_seed(9)
    hist, _ = abs_histogram(torch.randn(2, 20_000, generator=gen), 128)
    ours = kl_divergence_by_threshold(hist, 16).numpy()
    for c in range(2):
        h = hist[c].numpy()
        for j, i in enumerate(range(16, 129)):
            p = h[:i].astype(np.float64)
            p[-1] += h[i:].sum()
            group = (np.arange(i) * 16) // i
            q = np.zeros(i)
            for k in range(16):
                nz = (group == k) & (h[:i] > 0)
                if nz.any():
                    q[nz] = h[:i][group == k].sum() / nz.sum()
            p, q = p / p.sum(), q / q.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                ref = np.where(p > 0, p * np.log(p / q), 0.0).sum()
            assert ours[c, j] == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_abs_histogram_counts_are_int64_and_exact():
    x = torch.zeros(1, 2**24 + 10)  # one bin past float32's exact-integer limit
    hist, amax = abs_histogram(x, 16)
    assert hist.dtype == torch.int64
    assert int(hist[0, 0]) == 2**24 + 10


@pytest.mark.parametrize("bits", [4, 8])
def test_omse_histogram_summary_matches_exact_search(bits, monkeypatch):
    """Past 16 values per bin OMSE scores candidates on a histogram; the choice must match
    the exact per-element search to within 0.01 dB."""
    import quantlib.observers.omse as omse

    gen = torch.Generator().manual_seed(10)
    # a scale mixture of Gaussians: heavier tails than a Gaussian
    x = torch.randn(300_000, generator=gen) * torch.rand(300_000, generator=gen).add(0.2)
    bt = BitType(bits, True)
    results = []
    for summary_bins in (1024, 10**9):
        monkeypatch.setattr(omse, "SUMMARY_BINS", summary_bins)
        obs = build_observer(make_config("OmseObserver", bits=bits))
        obs.update(x)
        scale, zero = obs.get_quantization_params()
        results.append(qsnr(x, fake_quantize(x, scale, zero, bt)))
    assert results[0] == pytest.approx(results[1], abs=0.01)


@pytest.mark.parametrize("kind", ["gaussian", "integers", "one_huge_outlier", "half_constant"])
def test_tensor_quantiles_select_exactly_like_numpy(kind):
    """The histogram-select path (over 64K values) must give numpy's exact quantiles, even
    with heavy duplication or an outlier that squeezes all data into one bin."""
    from quantlib.observers.percentile import tensor_quantiles

    gen = torch.Generator().manual_seed(11)
    x = torch.randn(300_000, generator=gen)
    if kind == "integers":
        x = (x * 3).round()
    elif kind == "one_huge_outlier":
        x[17] = 1e30
    elif kind == "half_constant":
        x[:150_000] = 0.5
    qs = [0.0, 1e-4, 0.01, 0.5, 0.99, 0.9999, 1.0]
    expected = np.quantile(x.numpy(), qs).astype(np.float32)
    np.testing.assert_allclose(tensor_quantiles(x, qs).numpy(), expected, rtol=1e-6)


def test_per_channel_kl_work_cap_costs_little_accuracy(monkeypatch):
    """Thinning each channel's cuts to 64 (the work cap) must stay within 0.3 dB of scoring
    every cut."""
    import quantlib.observers.kl as kl

    gen = torch.Generator().manual_seed(12)
    x = torch.randn(32, 20_000, generator=gen) * torch.rand(32, 1, generator=gen).add(0.5)
    x = x.sign() * x.abs().pow(1.5)
    cfg = make_config("KLObserver", "channel_wise")
    out = []
    for budget in (1, 2**40):  # 1 -> the 64-cut floor applies; 2**40 -> every cut
        monkeypatch.setattr(kl, "_WORK_BUDGET", budget)
        obs = build_observer(cfg)
        obs.update(x)
        scale, zero = obs.get_quantization_params()
        out.append(qsnr(x, fake_quantize(x, scale, zero, cfg.bit_type, 0)))
    assert out[0] == pytest.approx(out[1], abs=0.3)


@pytest.mark.parametrize("bits", [4, 8])
def test_omse_coarse_to_fine_matches_exhaustive_search(bits, monkeypatch):
    import quantlib.observers.omse as omse

    gen = torch.Generator().manual_seed(13)
    x = torch.randn(600, 256, generator=gen) * torch.rand(1, 256, generator=gen).add(0.2)
    cfg = make_config("OmseObserver", "channel_wise", bits=bits)
    ranges = []
    for work in (1, 2**60):  # 1 -> always coarse-to-fine; 2**60 -> always exhaustive
        monkeypatch.setattr(omse, "_EXHAUSTIVE_WORK", work)
        obs = build_observer(cfg, channel_axis=-1)
        obs.update(x)
        ranges.append(obs.compute_range()[1])
    agree = (ranges[0] == ranges[1]).double().mean()
    assert agree >= 0.97  # the same ratio for (nearly) every channel

