"""KLObserver on FP8: the entropy search groups the histogram by the format's own levels.

Checked against a plain loop written here (every candidate threshold, the grid's groups by
``searchsorted``), and end to end: an FP8 config with KL loads, clips heavy tails and quantizes
a layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from quantlib.bit_type import BitType
from quantlib.formats import FORMATS
from quantlib.formats.grid import nonnegative_grid
from quantlib.observers import build_observer
from quantlib.observers.kl import abs_histogram, kl_divergence_by_threshold
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear
from tests.quantlib.kl_reference import reference_kl

FP8 = ("fp8_e4m3", "fp8_e5m2")


def grid_edges(name: str) -> np.ndarray:
    """The non-negative levels in units of the smallest step (exact integers)."""
    grid = nonnegative_grid(FORMATS[name]).double().numpy()
    edges = grid / grid[1]
    assert np.array_equal(edges, np.round(edges))
    return edges.astype(np.int64)


@pytest.mark.parametrize("name", FP8)
def test_grid_grouped_divergences_equal_the_plain_loop(name):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 30_000, generator=gen)
    x[1, :30] *= 25  # one channel with outliers
    hist, _ = abs_histogram(x, 512)
    edges = grid_edges(name)
    nq = len(edges) - 1
    kept = torch.arange(nq, 513).expand(2, -1)
    ours = kl_divergence_by_threshold(hist, nq, kept, torch.from_numpy(edges)).numpy()
    for c in range(2):
        h = hist[c].numpy()
        for j, i in enumerate(range(nq, 513)):
            ref = reference_kl(h, edges, i)
            if math.isinf(ours[c, j]) or math.isnan(ref):
                continue  # an empty last bin with mass beyond: never a winner
            assert ours[c, j] == pytest.approx(ref, rel=1e-9, abs=1e-12), (c, i)


def kl_config(name: str, mode: str = "layer_wise") -> QuantConfig:
    return QuantConfig(calibration_mode=mode, bit_type=BitType(name=name),
                       observer_type="KLObserver", kl_bins=1024)


@pytest.mark.parametrize("name", FP8)
def test_kl_threshold_is_the_plain_loops_minimum(name):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(60_000, generator=gen)
    x[:12] *= 60  # sparse outliers
    observer = build_observer(kl_config(name))
    observer.update(x)
    _, hi = observer.compute_range()
    hist, amax = abs_histogram(x.reshape(1, -1), 1024)
    edges = grid_edges(name)
    scores = {i: reference_kl(hist[0].numpy(), edges, i)
              for i in range(len(edges) - 1, 1025) if hist[0, i - 1] > 0 or i == 1024}
    best = min(scores.values())
    winner = max(i for i, kl in scores.items() if kl == best)  # the last minimum
    assert abs(round(float(hi) / float(amax) * 1024) - winner) <= 1


@pytest.mark.parametrize("mode", ["layer_wise", "channel_wise"])
def test_fp8_kl_config_quantizes_a_layer(mode):
    gen = torch.Generator().manual_seed(7)
    linear = nn.Linear(64, 48)
    outputs = kl_config("fp8_e4m3", mode)
    layer = QuantLinear(linear, out_config=outputs, weight_config=kl_config("fp8_e4m3", mode))
    x = torch.randn(256, 64, generator=gen)
    x[:2] *= 30
    layer.calibration(x)
    layer.compute_output_quant_params()
    layer.mode = "quantized"
    y = layer(torch.randn(64, 64, generator=gen))
    stats = layer.get_profiling_results()
    assert torch.isfinite(y).all()
    assert stats["weight"]["statistics"]["qsnr"] > 25  # FP8 E4M3 keeps ~31 dB on a weight
    assert math.isfinite(stats["output"]["statistics"]["qsnr"])
