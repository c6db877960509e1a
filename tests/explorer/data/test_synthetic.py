"""Behaviour of the seeded synthetic sample data in ``explorer.data.synthetic``."""

import math

import pytest
import torch

from explorer.data import synthetic
from explorer.data.synthetic import (
    INPUT_SOURCES,
    WEIGHT_SOURCES,
    llm_outlier_features,
    make_bias,
    make_calibration_batches,
    make_eval_batch,
    make_weight,
)


@pytest.mark.parametrize("source", WEIGHT_SOURCES, ids=WEIGHT_SOURCES)
def test_weight_is_deterministic_per_seed_and_differs_across_seeds(source):
    weight = make_weight(source, 48, 96, seed=7)
    assert weight.shape == (48, 96)
    assert weight.dtype == torch.float32
    assert torch.equal(weight, make_weight(source, 48, 96, seed=7))
    assert not torch.equal(weight, make_weight(source, 48, 96, seed=8))


@pytest.mark.parametrize("source", INPUT_SOURCES, ids=INPUT_SOURCES)
def test_inputs_are_deterministic_per_seed_and_differ_across_seeds(source):
    batches = make_calibration_batches(source, 3, 16, 64, seed=1)
    again = make_calibration_batches(source, 3, 16, 64, seed=1)
    other_seed = make_calibration_batches(source, 3, 16, 64, seed=2)
    assert len(batches) == 3
    assert all(b.shape == (16, 64) and b.dtype == torch.float32 for b in batches)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(batches, other_seed, strict=True))
    assert not torch.equal(batches[0], batches[1])
    eval_batch = make_eval_batch(source, 16, 64, seed=1)
    assert torch.equal(eval_batch, make_eval_batch(source, 16, 64, seed=1))
    assert not any(torch.equal(eval_batch, b) for b in batches)


def test_first_calibration_batches_do_not_depend_on_batch_count():
    few = make_calibration_batches("Gaussian", 2, 8, 32, seed=3)
    many = make_calibration_batches("Gaussian", 5, 8, 32, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(few, many[:2], strict=False))


def test_sampling_leaves_the_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    make_weight("Outlier channels", 32, 32, seed=0)
    make_calibration_batches("LLM-like outlier features", 2, 8, 512, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_kaiming_init_matches_nn_linear_bounds():
    in_features = 400
    bound = 1 / math.sqrt(in_features)
    weight = make_weight("Kaiming init", 300, in_features, seed=0)
    bias = make_bias(300, in_features, seed=0)
    reference = torch.nn.Linear(in_features, 300)
    for tensor, ref in ((weight, reference.weight), (bias, reference.bias)):
        assert tensor.abs().max() <= bound
        assert tensor.abs().max() > 0.98 * bound  # fills the range, like nn.Linear
        assert tensor.std().item() == pytest.approx(ref.std().item(), rel=0.1)


def test_bias_is_deterministic_and_independent_of_the_weight_stream():
    bias = make_bias(64, 128, seed=5)
    assert bias.shape == (64,)
    assert torch.equal(bias, make_bias(64, 128, seed=5))
    assert not torch.equal(bias, make_bias(64, 128, seed=6))
    assert not torch.equal(bias, make_weight("Kaiming init", 64, 128, seed=5)[:, 0])


@pytest.mark.parametrize(
    "source", ["Gaussian", "Laplace", "Student-t heavy tails"], ids=["gauss", "laplace", "t3"]
)
def test_weight_scale_is_one_over_sqrt_fan_in(source):
    weight = make_weight(source, 512, 512, seed=0)
    assert weight.std().item() * math.sqrt(512) == pytest.approx(1.0, rel=0.1)


def test_heavier_tailed_sources_have_more_mass_beyond_eight_sigma():
    def tail_fraction(source):
        weight = make_weight(source, 512, 512, seed=0)
        return (weight.abs() > 8 / math.sqrt(512)).float().mean().item()

    assert tail_fraction("Gaussian") == 0
    assert tail_fraction("Student-t heavy tails") > 10 * tail_fraction("Laplace")


@pytest.mark.parametrize(
    ("out_features", "expected_outliers"), [(8, 1), (100, 1), (300, 3)], ids=["8", "100", "300"]
)
def test_outlier_channels_scale_about_one_percent_of_rows_by_20_to_50(
    out_features, expected_outliers
):
    weight = make_weight("Outlier channels", out_features, 256, seed=4)
    row_norms = weight.norm(dim=1)
    outliers = row_norms > 10 * row_norms.median()
    assert outliers.sum().item() == expected_outliers
    ratio = row_norms[outliers] / row_norms[~outliers].mean()
    assert ratio.min() > 20 * 0.85 and ratio.max() < 50 * 1.15


def test_relu_and_gelu_inputs_have_the_activation_shape():
    relu = make_eval_batch("ReLU-activated", 512, 64, seed=0)
    gelu = make_eval_batch("GELU-activated", 512, 64, seed=0)
    assert relu.min() == 0
    assert (relu == 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert -0.1701 <= gelu.min() < 0  # GELU's minimum is about -0.16997
    assert (gelu < 0).float().mean().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("source", ["Gaussian", "Uniform", "Laplace"], ids=str)
def test_plain_inputs_have_unit_variance(source):
    inputs = torch.cat(make_calibration_batches(source, 4, 256, 256, seed=0))
    assert inputs.std().item() == pytest.approx(1.0, rel=0.03)
    assert inputs.mean().item() == pytest.approx(0.0, abs=0.02)
    if source == "Uniform":
        assert inputs.abs().max() <= math.sqrt(3)


@pytest.mark.parametrize(
    ("in_features", "expected_count"), [(64, 2), (1024, 5), (4096, 20)], ids=["64", "1024", "4096"]
)
def test_llm_like_outlier_features_are_20_to_100x_and_fixed(in_features, expected_count):
    batches = make_calibration_batches("LLM-like outlier features", 4, 256, in_features, seed=9)
    eval_batch = make_eval_batch("LLM-like outlier features", 256, in_features, seed=9)
    features, scales = llm_outlier_features(in_features, seed=9)
    assert features.numel() == expected_count
    assert ((scales >= 20) & (scales < 100)).all()
    regular = torch.ones(in_features, dtype=torch.bool)
    regular[features] = False
    for batch in [*batches, eval_batch]:
        std = batch.std(dim=0)
        detected = (std > 10 * std.median()).nonzero().flatten()
        assert torch.equal(detected, features)  # the same features in every batch
        ratio = std[features] / std[regular].mean()
        assert ((ratio > 20 * 0.8) & (ratio < 100 * 1.2)).all()
        assert torch.allclose(ratio, scales, rtol=0.25)


@pytest.mark.parametrize("in_features", [1, 2, 3], ids=["1", "2", "3"])
def test_llm_like_outliers_never_take_more_than_half_the_features(in_features):
    features, _ = llm_outlier_features(in_features, seed=0)
    assert features.numel() == in_features // 2


BAD_SOURCE_CALLS = {
    "weight": (lambda: make_weight("Cauchy", 4, 4, 0), WEIGHT_SOURCES),
    "calibration": (lambda: make_calibration_batches("gaussian", 1, 4, 4, 0), INPUT_SOURCES),
    "eval": (lambda: make_eval_batch("", 4, 4, 0), INPUT_SOURCES),
}


@pytest.mark.parametrize("call", BAD_SOURCE_CALLS, ids=str)
def test_unknown_source_raises_listing_valid_choices(call):
    make, choices = BAD_SOURCE_CALLS[call]
    with pytest.raises(ValueError, match="valid choices") as error:
        make()
    assert all(repr(choice) in str(error.value) for choice in choices)


SIZE_CASES = [
    ("out_features", lambda v: make_weight("Gaussian", v, 4, 0), synthetic.MAX_FEATURES),
    ("in_features", lambda v: make_weight("Gaussian", 4, v, 0), synthetic.MAX_FEATURES),
    ("out_features", lambda v: make_bias(v, 4, 0), synthetic.MAX_FEATURES),
    ("num_batches", lambda v: make_calibration_batches("Gaussian", v, 4, 4, 0), 64),
    ("batch_size", lambda v: make_calibration_batches("Gaussian", 1, v, 4, 0), 8192),
    ("in_features", lambda v: make_calibration_batches("Gaussian", 1, 4, v, 0), 8192),
    ("batch_size", lambda v: make_eval_batch("Gaussian", v, 4, 0), 8192),
    ("in_features", lambda v: make_eval_batch("Gaussian", 4, v, 0), 8192),
]
SIZE_IDS = [
    f"{field}-{name}"
    for (field, _, _), name in zip(
        SIZE_CASES,
        ["weight", "weight", "bias", "calib", "calib", "calib", "eval", "eval"],
        strict=True,
    )
]


@pytest.mark.parametrize(("field", "make", "cap"), SIZE_CASES, ids=SIZE_IDS)
def test_sizes_out_of_range_raise_naming_the_field(field, make, cap):
    for bad in (0, -3, cap + 1):
        with pytest.raises(ValueError, match=f"{field} must be between 1 and {cap}"):
            make(bad)
    with pytest.raises(ValueError, match=f"{field} must be an integer"):
        make(2.5)


def test_calibration_set_total_size_is_capped():
    with pytest.raises(ValueError, match="calibration data too large"):
        make_calibration_batches("Gaussian", 64, 8192, 8192, seed=0)


def test_non_integer_seed_is_rejected():
    with pytest.raises(ValueError, match="seed must be an integer"):
        make_weight("Gaussian", 4, 4, seed="7")
