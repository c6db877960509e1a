"""Randomized Hadamard rotations: orthogonal for every supported size, exact identity."""

from __future__ import annotations

import pytest
import torch

from quantlib.transforms.hadamard import (
    fwht,
    hadamard_matrix,
    is_supported_size,
    random_hadamard,
)
from tests.quantlib.transforms.data import make_layer, relative_error

SIZES = [1, 2, 4, 64, 256, 1024, 4096, 12, 24, 48, 384, 768, 1536, 3072]


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
def test_hadamard_matrix_has_pm1_entries_and_orthogonal_rows(n):
    h = hadamard_matrix(n).double()
    assert set(h.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(h @ h.T, n * torch.eye(n, dtype=h.dtype))


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
def test_randomized_rotation_is_orthogonal_and_fast_path_matches_dense(n):
    rot = random_hadamard(n, seed=3)
    q = rot.matrix().double()
    assert torch.allclose(q @ q.T, torch.eye(n, dtype=q.dtype), atol=1e-6)
    x = torch.randn(5, n, generator=torch.Generator().manual_seed(n))
    assert relative_error(rot.apply(x), x.double() @ q) < 1e-6
    assert relative_error(rot.apply_inverse(rot.apply(x)), x) < 1e-6


def test_fwht_is_the_sylvester_product():
    x = torch.randn(3, 7, 32)
    assert torch.allclose(fwht(x), x @ hadamard_matrix(32), atol=1e-5)


def test_seed_controls_the_signs():
    a, b, c = random_hadamard(768, 0), random_hadamard(768, 0), random_hadamard(768, 1)
    assert torch.equal(a.signs, b.signs) and not torch.equal(a.signs, c.signs)
    assert set(a.signs.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("shape", [(64, 384), (96, 768), (32, 1024)],
                         ids=["minilm-384", "bert-768", "pow2-1024"])
def test_rotating_input_and_weight_keeps_the_fp32_output(shape):
    out_features, in_features = shape
    weight, bias, calib, _ = make_layer(out_features, in_features, 256, seed=1)
    rot = random_hadamard(in_features, seed=7)
    y = calib @ weight.T + bias
    y_rot = rot.apply(calib) @ rot.apply(weight).T + bias
    assert relative_error(y_rot, y) < 1e-5


def test_rotation_spreads_outlier_channels():
    _, _, calib, _ = make_layer(8, 768, 256, seed=2)
    rotated = random_hadamard(768, 0).apply(calib)
    ratio = lambda t: float(t.abs().amax() / t.abs().mean())  # noqa: E731
    assert ratio(rotated) < ratio(calib) / 5


@pytest.mark.parametrize("n", [0, 3, 100, 36, 640, -4], ids=lambda n: f"n{n}")
def test_unsupported_sizes_are_refused_naming_size_and_forms(n):
    assert not is_supported_size(n)
    with pytest.raises(ValueError, match=rf"size {n}: supported sizes are powers of two.*12 \*"):
        random_hadamard(n)


def test_apply_checks_the_last_axis():
    with pytest.raises(ValueError, match="last axis must be 64"):
        random_hadamard(64).apply(torch.zeros(2, 32))
