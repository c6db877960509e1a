"""The blocked KL paths (abs_histogram in cache-sized blocks, KL from one term per cut and
group) against the implementations they replaced and a plain per-cut loop."""

import numpy as np
import pytest
import torch

import quantlib.observers.kl as kl


def signed_bincount_histogram(values: torch.Tensor, bins: int) -> torch.Tensor:
    """The previous abs_histogram: one bincount of trunc(x * B / amax) on 2B + 1 signed bins,
    folded onto |x|."""
    channels = values.shape[0]
    amax = torch.maximum(-values.amin(1), values.amax(1))
    tiny = (amax > 0) & (amax < 2.0**-64)
    boost = torch.where(tiny, 2.0**64, 1.0)
    values, boosted = values * boost.unsqueeze(1), amax * boost
    per_unit = torch.where(amax > 0, bins / boosted, torch.zeros_like(amax))
    width = 2 * bins + 1
    idx = (values * per_unit.unsqueeze(1)).to(torch.int64)
    idx += (torch.arange(channels) * width + bins).unsqueeze(1)
    signed = torch.bincount(idx.reshape(-1), minlength=channels * width).reshape(channels, width)
    counts = signed[:, bins:2 * bins].clone()
    counts[:, 1:] += signed[:, 1:bins].flip(1)
    counts[:, -1] += signed[:, 0] + signed[:, 2 * bins]
    return counts


def loop_kl(hist: np.ndarray, nq: int, kept: np.ndarray) -> np.ndarray:
    """KL(P || Q) per cut, one cut at a time (numpy, float64)."""
    out = np.empty(len(kept))
    for j, i in enumerate(kept):
        p = hist[:i].astype(np.float64)
        p[-1] += hist[i:].sum()
        group = (np.arange(i) * nq) // i
        nonzero = hist[:i] > 0
        mass = np.bincount(group, weights=hist[:i], minlength=nq)
        count = np.bincount(group, weights=nonzero, minlength=nq)
        q = np.where(nonzero, mass[group] / np.maximum(count[group], 1), 0.0)
        p, q = p / p.sum(), q / q.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            out[j] = np.where(p > 0, p * np.log(p / q), 0.0).sum()
    return out


def data(kind: str, shape, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen)
    if kind == "laplace":
        e = torch.empty(2, *shape).exponential_(generator=gen)
        x = e[0] - e[1]
    elif kind == "outliers":
        x.view(-1)[::997] *= 20
    return x


@pytest.mark.parametrize("shape,bins", [
    ((1, 100_003), 2048),   # one row in column blocks, a short last block
    ((1, 70_001), 500),     # bins not a power of two
    ((37, 500), 256),       # several rows per block (per-row offsets)
    ((3, 70_000), 1024),    # rows longer than a block
    ((768, 768), 256),      # a channel_wise weight
], ids=["layer", "odd-bins", "rows", "long-rows", "weight"])
@pytest.mark.parametrize("kind", ["gaussian", "laplace", "outliers"])
def test_blocked_histogram_equals_signed_bincount(shape, bins, kind):
    x = data(kind, shape)
    hist, amax = kl.abs_histogram(x, bins)
    assert hist.dtype == torch.int64 and hist.shape == (shape[0], bins)
    assert torch.equal(hist, signed_bincount_histogram(x, bins))
    assert torch.equal(amax, torch.maximum(-x.amin(1), x.amax(1)))


def test_blocked_histogram_edge_values():
    """+-amax, zero rows, denormal ranges and a non-contiguous view bin as before."""
    x = data("gaussian", (6, 40_000), seed=3)
    x[0, :5] = x[0].abs().max()
    x[0, 5:10] = -x[0].abs().max()
    x[1] = 0.0
    x[2] *= 1e-30
    x[3] = torch.nextafter(torch.zeros(40_000), torch.ones(40_000)) * torch.arange(40_000)
    for values in (x, x[:, ::3], x.t().contiguous().t()[:, 1:]):
        hist, _ = kl.abs_histogram(values, 2048)
        assert torch.equal(hist, signed_bincount_histogram(values.contiguous(), 2048))
        assert (hist.sum(1) == values.shape[1]).all()


@pytest.mark.parametrize("shape", [(1, 2**21 + 4099), (3, 2**20 + 7), (4096, 640)],
                         ids=["layer", "long-rows", "many-rows"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_histogram_equals_signed_bincount(shape, threads, monkeypatch):
    """Large tensors are counted on several threads (each its own share of blocks, then one
    sum): the same counts as one bincount, whatever the thread count."""
    monkeypatch.setattr(kl.torch, "get_num_threads", lambda: threads)
    x = data("outliers", shape, seed=11)
    assert kl._histogram_workers(x) == threads
    hist, _ = kl.abs_histogram(x, 2048)
    assert torch.equal(hist, signed_bincount_histogram(x, 2048))


@pytest.mark.parametrize("nq,bins,channels", [(128, 2048, 1), (128, 512, 5), (12, 300, 3)],
                         ids=["8bit-2048", "rows", "nq-not-power-of-two"])
def test_kl_terms_equal_loop_reference(nq, bins, channels):
    """Every cut (several blocks of cuts, and of rows) against the per-cut loop."""
    x = data("laplace", (channels, 200_000 // channels), seed=5)
    x[:, :3] *= 30  # a sparse tail: empty bins, infinite cuts
    hist, _ = kl.abs_histogram(x, bins)
    ours = kl.kl_divergence_by_threshold(hist, nq)
    kept = np.arange(nq, bins + 1)
    for c in range(channels):
        ref = loop_kl(hist[c].numpy(), nq, kept)
        finite = np.isfinite(ref)
        assert np.array_equal(np.isfinite(ours[c].numpy()), finite)
        np.testing.assert_allclose(ours[c].numpy()[finite], ref[finite], rtol=1e-9, atol=1e-12)
        assert np.argmin(ref[::-1]) == int(torch.argmin(ours[c].flip(0)))


@pytest.mark.parametrize("kind", ["gaussian", "laplace", "outliers"])
def test_kl_on_useful_cuts_matches_loop_argmin(kind):
    """The layer_wise search at the default 8 bits / 2048 bins picks the loop's cut."""
    x = data(kind, (1, 1_000_000), seed=7)
    hist, _ = kl.abs_histogram(x, 2048)
    cuts, count = kl.useful_cuts(hist, 128)
    kept = cuts[:, :int(count)]
    ours = kl.kl_divergence_by_threshold(hist, 128, kept)[0]
    ref = loop_kl(hist[0].numpy(), 128, kept[0].numpy())
    best = len(ref) - 1 - np.argmin(ref[::-1])
    assert len(ref) - 1 - int(torch.argmin(ours.flip(0))) == best
