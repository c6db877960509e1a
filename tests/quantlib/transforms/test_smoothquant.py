"""SmoothQuant: scales, the exact fp32 identity, and the alpha curve against a plain loop."""

from __future__ import annotations

import pytest
import torch

from quantlib.formats import fake_quantize
from quantlib.transforms.smoothquant import (
    channel_absmax,
    output_qsnr,
    smooth_layer,
    smoothquant_alpha_curve,
    smoothquant_scales,
)
from tests.quantlib.transforms.data import make_layer, relative_error


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.85, 1.0], ids=lambda a: f"alpha{a}")
def test_smoothing_is_an_exact_identity_in_fp32(alpha):
    weight, bias, calib, held_out = make_layer(96, 256, 512, seed=1)
    smoothed, s = smooth_layer(weight, calib, alpha)
    y = held_out @ weight.T + bias
    assert relative_error((held_out / s) @ smoothed.T + bias, y) < 1e-5


def test_scales_follow_the_formula():
    weight, _, calib, _ = make_layer(32, 64, 128, seed=2)
    a, w = channel_absmax(calib), channel_absmax(weight)
    s = smoothquant_scales(a, w, 0.7)
    assert torch.allclose(s, a.pow(0.7) / w.pow(0.3), rtol=1e-5)
    batch = smoothquant_scales(a, w, torch.tensor([0.0, 0.7]))
    assert batch.shape == (2, 64) and torch.allclose(batch[1], s)


def test_zero_channels_get_scale_one():
    a = torch.tensor([0.0, 2.0, 3.0, 4.0])
    w = torch.tensor([1.0, 0.0, 3.0, 4.0])
    s = smoothquant_scales(a, w, 0.5)
    assert s[0] == 1.0 and s[1] == 1.0 and torch.isfinite(s).all()


def test_smoothing_flattens_the_activation_outliers():
    weight, _, calib, _ = make_layer(64, 256, 512, seed=3)
    _, s = smooth_layer(weight, calib, 0.5)
    before = channel_absmax(calib)
    after = channel_absmax(calib / s)
    assert after.max() / after.median() < (before.max() / before.median()) / 5


def plain_curve(weight, calib, wq, aq, alphas, bias):
    """One alpha at a time, everything recomputed: the reference for the vectorised curve."""
    y = calib @ weight.T + bias
    out = []
    for alpha in alphas:
        smoothed, s = smooth_layer(weight, calib, float(alpha))
        out.append(output_qsnr(y, aq(calib / s) @ wq(smoothed).T + bias))
    return torch.tensor(out, dtype=torch.float64)


def w8(t):
    return fake_quantize(t, "int8", axis=0)


def a8(t):
    return fake_quantize(t, "int8")


@pytest.mark.parametrize("quantizers", [(w8, a8), (w8, None), (None, a8)],
                         ids=["w8a8", "w8-only", "a8-only"])
def test_alpha_curve_matches_the_plain_loop(quantizers):
    wq, aq = quantizers
    weight, bias, calib, _ = make_layer(64, 128, 256, seed=4)
    alphas, qsnr = smoothquant_alpha_curve(weight, calib, wq, aq, bias=bias)
    assert len(alphas) == 21 and alphas[0] == 0 and alphas[-1] == 1
    ident = lambda t: t  # noqa: E731
    ref = plain_curve(weight, calib, wq or ident, aq or ident, alphas, bias)
    assert torch.allclose(qsnr, ref, atol=1e-3)


def test_smoothing_helps_w8a8_with_outliers():
    weight, _, calib, _ = make_layer(128, 256, 512, seed=5)
    _, qsnr = smoothquant_alpha_curve(weight, calib, w8, a8)
    assert qsnr.max() > qsnr[0] + 3  # alpha = 0 keeps activation outliers


def test_unquantized_curve_only_shows_fp32_rounding():
    weight, _, calib, _ = make_layer(8, 16, 32, seed=6)
    _, qsnr = smoothquant_alpha_curve(weight, calib, alphas=[0.0, 0.5, 1.0])
    assert (qsnr > 110).all()


def test_output_qsnr_of_an_exact_copy_is_infinite():
    y = torch.randn(4, 4)
    assert output_qsnr(y, y.clone()) == float("inf")
