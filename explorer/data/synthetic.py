"""Seeded synthetic sample data for the explorer: weights, biases and input batches.

Everything here is pure torch and deterministic: every tensor comes from a private
``torch.Generator`` seeded from the user's seed and a fixed stream id, never from the global RNG.
The same seed therefore always gives the same layer and the same data, in any order of calls.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

WEIGHT_SOURCES = (
    "Kaiming init",
    "Gaussian",
    "Laplace",
    "Student-t heavy tails",
    "Outlier channels",
)
INPUT_SOURCES = (
    "Gaussian",
    "Uniform",
    "Laplace",
    "ReLU-activated",
    "GELU-activated",
    "LLM-like outlier features",
)

MAX_FEATURES = 8192
MAX_BATCH_ROWS = 8192
MAX_BATCHES = 64
# 64 batches x 8192 rows x 8192 features would be 17 GB; cap the calibration set at 512 MB.
MAX_CALIBRATION_ELEMENTS = 2**27

OUTLIER_ROW_FRACTION = 0.01
OUTLIER_ROW_SCALE = (20.0, 50.0)
OUTLIER_FEATURE_FRACTION = 0.005
OUTLIER_FEATURE_SCALE = (20.0, 100.0)
STUDENT_T_DF = 3

# Fixed stream ids: one independent random stream per purpose.
_WEIGHT_STREAM = 1
_BIAS_STREAM = 2
_CALIBRATION_STREAM = 3
_EVAL_STREAM = 4
_OUTLIER_FEATURE_STREAM = 5


def make_weight(source: str, out_features: int, in_features: int, seed: int) -> torch.Tensor:
    """Return a float32 weight of shape ``[out_features, in_features]`` drawn from ``source``.

    All sources have a typical magnitude of ``1/sqrt(in_features)``, as ``nn.Linear`` does:
    "Kaiming init" is ``nn.Linear``'s default (uniform in ``±1/sqrt(in)``), "Gaussian",
    "Laplace" and "Student-t heavy tails" (df=3) have std ``1/sqrt(in)``, and "Outlier channels"
    is Gaussian with ~1% (at least one) output rows scaled by 20-50x.
    """
    _check_choice("weight source", source, WEIGHT_SOURCES)
    out_features = _checked_size("out_features", out_features, MAX_FEATURES)
    in_features = _checked_size("in_features", in_features, MAX_FEATURES)
    generator = _generator(seed, _WEIGHT_STREAM)
    shape = (out_features, in_features)
    std = 1.0 / math.sqrt(in_features)
    if source == "Kaiming init":
        return _uniform(shape, std, generator)
    if source == "Gaussian":
        return torch.randn(shape, generator=generator) * std
    if source == "Laplace":
        return _laplace(shape, generator) * std
    if source == "Student-t heavy tails":
        return _student_t(shape, generator) * std
    weight = torch.randn(shape, generator=generator) * std
    rows, scales = _pick_outliers(
        out_features,
        max(1, round(OUTLIER_ROW_FRACTION * out_features)),
        OUTLIER_ROW_SCALE,
        generator,
    )
    weight[rows] *= scales[:, None]
    return weight


def make_bias(out_features: int, in_features: int, seed: int) -> torch.Tensor:
    """Return a float32 bias of shape ``[out_features]``, uniform in ``±1/sqrt(in_features)``.

    This matches ``nn.Linear``'s default bias initialisation.
    """
    out_features = _checked_size("out_features", out_features, MAX_FEATURES)
    in_features = _checked_size("in_features", in_features, MAX_FEATURES)
    return _uniform((out_features,), 1.0 / math.sqrt(in_features), _generator(seed, _BIAS_STREAM))


def make_calibration_batches(
    source: str, num_batches: int, batch_size: int, in_features: int, seed: int
) -> list[torch.Tensor]:
    """Return ``num_batches`` float32 input batches, each of shape ``[batch_size, in_features]``.

    Batches are drawn one after another from one stream, so the first k batches do not depend
    on ``num_batches``. See :func:`make_eval_batch` for the sources.
    """
    _check_choice("input source", source, INPUT_SOURCES)
    num_batches = _checked_size("num_batches", num_batches, MAX_BATCHES)
    batch_size = _checked_size("batch_size", batch_size, MAX_BATCH_ROWS)
    in_features = _checked_size("in_features", in_features, MAX_FEATURES)
    total = num_batches * batch_size * in_features
    if total > MAX_CALIBRATION_ELEMENTS:
        raise ValueError(
            f"calibration data too large: num_batches * batch_size * in_features = {total:,} "
            f"elements exceeds the cap of {MAX_CALIBRATION_ELEMENTS:,}; "
            "reduce num_batches or batch_size"
        )
    generator = _generator(seed, _CALIBRATION_STREAM)
    return [
        _make_inputs(source, batch_size, in_features, seed, generator) for _ in range(num_batches)
    ]


def make_eval_batch(source: str, batch_size: int, in_features: int, seed: int) -> torch.Tensor:
    """Return one float32 evaluation batch ``[batch_size, in_features]``, unseen in calibration.

    Sources (unit scale before any activation): "Gaussian" N(0, 1); "Uniform" with unit
    variance; "Laplace" with unit variance; "ReLU-activated" / "GELU-activated" apply the
    activation to a Gaussian; "LLM-like outlier features" is Gaussian with ~0.5% (at least two)
    fixed input features 20-100x larger. Those features depend only on ``seed`` and
    ``in_features``, so calibration and evaluation batches share them.
    """
    _check_choice("input source", source, INPUT_SOURCES)
    batch_size = _checked_size("batch_size", batch_size, MAX_BATCH_ROWS)
    in_features = _checked_size("in_features", in_features, MAX_FEATURES)
    return _make_inputs(source, batch_size, in_features, seed, _generator(seed, _EVAL_STREAM))


def llm_outlier_features(in_features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(feature_indices [k], scales [k])`` of the "LLM-like" outlier features.

    ``k`` is ~0.5% of ``in_features`` and at least 2, but never more than half the features
    (so 1 for 2-3 features and 0 for a single feature). Scales lie in [20, 100).
    """
    in_features = _checked_size("in_features", in_features, MAX_FEATURES)
    count = min(max(2, round(OUTLIER_FEATURE_FRACTION * in_features)), in_features // 2)
    generator = _generator(seed, _OUTLIER_FEATURE_STREAM)
    return _pick_outliers(in_features, count, OUTLIER_FEATURE_SCALE, generator)


def _make_inputs(
    source: str, rows: int, in_features: int, seed: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw one ``[rows, in_features]`` batch of ``source`` from ``generator``."""
    shape = (rows, in_features)
    if source == "Uniform":
        return _uniform(shape, math.sqrt(3.0), generator)
    if source == "Laplace":
        return _laplace(shape, generator)
    inputs = torch.randn(shape, generator=generator)
    if source == "ReLU-activated":
        return F.relu(inputs)
    if source == "GELU-activated":
        return F.gelu(inputs)
    if source == "LLM-like outlier features":
        features, scales = llm_outlier_features(in_features, seed)
        inputs[:, features] *= scales
    return inputs


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform in ``[-bound, bound)``."""
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


def _laplace(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Unit-variance Laplace: the difference of two Exp(1) draws, divided by sqrt(2)."""
    exponentials = torch.empty((2, *shape)).exponential_(generator=generator)
    return (exponentials[0] - exponentials[1]) / math.sqrt(2.0)


def _student_t(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Unit-variance Student-t with ``STUDENT_T_DF`` degrees of freedom: Z / sqrt(chi2 / df)."""
    normal = torch.randn(shape, generator=generator)
    chi2 = torch.randn((STUDENT_T_DF, *shape), generator=generator).square().sum(dim=0)
    t = normal / torch.sqrt(chi2.clamp_min(1e-12) / STUDENT_T_DF)
    return t / math.sqrt(STUDENT_T_DF / (STUDENT_T_DF - 2))


def _pick_outliers(
    size: int, count: int, scale_range: tuple[float, float], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``count`` distinct sorted indices in ``[0, size)``, each with a scale in range."""
    indices = torch.randperm(size, generator=generator)[:count].sort().values
    low, high = scale_range
    scales = low + (high - low) * torch.rand(count, generator=generator)
    return indices, scales


def _generator(seed: int, stream: int) -> torch.Generator:
    """A private generator for (seed, stream); streams of one seed are independent."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9) % (2**63)
    return torch.Generator().manual_seed(mixed)


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"unknown {field} {value!r}; valid choices: {', '.join(repr(c) for c in choices)}"
        )


def _checked_size(field: str, value: int, cap: int) -> int:
    """Return ``value`` as an int after checking ``1 <= value <= cap``; errors name ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if not 1 <= value <= cap:
        raise ValueError(f"{field} must be between 1 and {cap}, got {value}")
    return int(value)
