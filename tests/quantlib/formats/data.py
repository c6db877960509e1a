"""Test data for the format kernels: named distributions, shaped [..., D]."""

from __future__ import annotations

import torch

DISTRIBUTIONS = ("gaussian", "laplace", "outliers", "zeros", "ties", "wide", "tiny", "huge")


def make_data(distribution: str, shape: tuple[int, ...], seed: int = 0,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A contiguous tensor of ``shape``:

    - gaussian / laplace: unit scale;
    - outliers: gaussian with one block-sized run (first 16 values) scaled by 1000, and a few
      single spikes;
    - zeros: gaussian with every other row and the first 32 values of the tensor zeroed, so
      there are all-zero blocks and all-zero channels next to normal ones;
    - ties: values k/8 and k/8 + 1/16 (on and between many formats' grid points);
    - wide: gaussian times 2^U(-24, 24) per value (subnormal elements inside a block, and
      saturation for per-tensor scales chosen from a smaller amax);
    - tiny / huge: gaussian times 1e-30 / 1e30.
    """
    gen = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(shape, generator=gen)
    if distribution == "gaussian":
        x = gaussian
    elif distribution == "laplace":
        uniform = torch.rand(shape, generator=gen).clamp_min(1e-12)
        x = -torch.log(uniform) * torch.sign(gaussian)  # |x| ~ Exp(1), random sign
    elif distribution == "outliers":
        x = gaussian.clone()
        flat = x.view(-1)
        flat[:16] *= 1000.0
        spikes = torch.randint(0, flat.numel(), (3,), generator=gen)
        flat[spikes] = torch.tensor([-250.0, 400.0, 90.0])
    elif distribution == "zeros":
        x = gaussian.clone()
        x.view(-1, shape[-1])[::2] = 0.0
        x.view(-1)[:32] = 0.0
    elif distribution == "ties":
        k = torch.randint(-64, 64, shape, generator=gen).float()
        half = torch.randint(0, 2, shape, generator=gen).float()
        x = k / 8 + half / 16
    elif distribution == "wide":
        exponent = torch.randint(-24, 25, shape, generator=gen).float()
        x = gaussian * torch.exp2(exponent)
    elif distribution == "tiny":
        x = gaussian * 1e-30
    elif distribution == "huge":
        x = gaussian * 1e30
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return x.to(dtype).contiguous()


def qsnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """10 log10(sum x^2 / sum (x - x_hat)^2), in float64."""
    x, x_hat = x.double(), x_hat.double()
    return float(10 * torch.log10(x.pow(2).sum() / (x - x_hat).pow(2).sum()))
