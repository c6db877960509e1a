"""Layer data for the transform tests: Gaussian weights, correlated Gaussian activations with a
few outlier channels (20-100x), as in transformer activations."""

from __future__ import annotations

import torch

OUTLIER_GAINS = (20.0, 50.0, 80.0, 100.0)


def make_layer(out_features: int = 128, in_features: int = 256, tokens: int = 512,
               seed: int = 0, outliers: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight [out, in], bias [out], calib_x [tokens, in], held-out x [tokens, in]).

    Activations are z (I + 0.5 G / sqrt(in)) with z, G standard normal (correlated channels,
    so second-order methods have something to use), then a few channels are scaled 20-100x.
    """
    gen = torch.Generator().manual_seed(seed)
    mix = torch.eye(in_features) + 0.5 * torch.randn(in_features, in_features,
                                                     generator=gen) / in_features**0.5
    x = torch.randn(2 * tokens, in_features, generator=gen) @ mix
    if outliers:
        channels = torch.randperm(in_features, generator=gen)[:len(OUTLIER_GAINS)]
        x[:, channels] *= torch.tensor(OUTLIER_GAINS)
    weight = 0.02 * torch.randn(out_features, in_features, generator=gen)
    bias = 0.1 * torch.randn(out_features, generator=gen)
    return weight, bias, x[:tokens].contiguous(), x[tokens:].contiguous()


def output_mse(x: torch.Tensor, weight: torch.Tensor, approx: torch.Tensor) -> float:
    """mean((x W^T - x approx^T)^2) in float64."""
    x64 = x.double()
    return float(((x64 @ weight.double().T - x64 @ approx.double().T) ** 2).mean())


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64."""
    return float((a.double() - b.double()).norm() / b.double().norm())
