"""Outlier-mitigation transforms side by side with plain reference implementations.

    python benchmarks/bench_transforms.py [--skip-big] [--repeat 3]

- GPTQ, int4 g128, on 768x768 with 2048 calibration tokens (target <= 2 s): ours (lazy block
  updates) vs the plain per-column loop of the paper (every update applied at once);
- GPTQ on 4096x4096 with 2048 tokens (target <= 60 s), ours only, with a progress callback
  (the plain loop would take minutes); ``--skip-big`` leaves it out;
- the SmoothQuant output-QSNR curve, 21 alphas, W8A8 (int8 per-channel weights, int8 per-tensor
  activations), 768x768 with 2048 tokens (target <= 1 s): ours vs one alpha at a time with
  everything recomputed.

Ours and the reference run interleaved (ours, reference, ours, ...); medians are reported.
Data: Gaussian weights, correlated Gaussian activations with four outlier channels (20-100x).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table  # noqa: E402
from quantlib.formats import fake_quantize  # noqa: E402
from quantlib.transforms import WeightFormat, WeightQuantizer, gptq_quantize  # noqa: E402
from quantlib.transforms.smoothquant import (  # noqa: E402
    output_qsnr,
    smooth_layer,
    smoothquant_alpha_curve,
)

INT4_G128 = WeightFormat("int4", "block", 128)


def make_layer(out_features: int, in_features: int, tokens: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.eye(in_features) + 0.5 * torch.randn(in_features, in_features,
                                                     generator=gen) / in_features**0.5
    x = torch.randn(tokens, in_features, generator=gen) @ mix
    channels = torch.randperm(in_features, generator=gen)[:4]
    x[:, channels] *= torch.tensor([20.0, 50.0, 80.0, 100.0])
    return 0.02 * torch.randn(out_features, in_features, generator=gen), x


def plain_gptq(weight, calib_x, fmt, damp=0.01):
    """The paper's loop without lazy batching: each column's error updates every remaining
    column at once (group scales fixed at the group's first column)."""
    w = weight.float().clone()
    n = w.shape[1]
    quantizer = WeightQuantizer(fmt, w)
    h = 2.0 * calib_x.T @ calib_x / calib_x.shape[0]
    h = h + damp * torch.diagonal(h).mean() * torch.eye(n)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    params = None
    for j in range(n):
        if j % quantizer.group == 0:
            params = quantizer.group_params(w[:, j:j + quantizer.group])
        q[:, j:j + 1] = quantizer.quantize(w[:, j:j + 1], params)
        err = (w[:, j] - q[:, j]) / u[j, j]
        w[:, j:] -= torch.outer(err, u[j, j:])
    return q


def w8(t):
    return fake_quantize(t, "int8", axis=0)


def a8(t):
    return fake_quantize(t, "int8")


def plain_curve(weight, calib_x, alphas):
    y = calib_x @ weight.T
    out = []
    for alpha in alphas.tolist():
        smoothed, s = smooth_layer(weight, calib_x, alpha)
        out.append(output_qsnr(y, a8(calib_x / s) @ w8(smoothed).T))
    return out


def interleaved(fns: list, repeat: int) -> list[float]:
    """Median seconds of each fn, run in turn (one warm-up round first)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            gc.collect()
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-big", action="store_true", help="leave out GPTQ 4096x4096")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []

    weight, x = make_layer(768, 768, 2048)
    ours, ref = interleaved([lambda: gptq_quantize(weight, x, INT4_G128),
                             lambda: plain_gptq(weight, x, INT4_G128)], args.repeat)
    rows.append(["GPTQ int4 g128, 768x768, 2048 tokens", f"{ours:.2f}", f"{ref:.2f}",
                 f"{ref / ours:.1f}x", "<= 2 s", "yes" if ours <= 2 else "NO"])

    alphas = torch.linspace(0, 1, 21)
    ours, ref = interleaved([lambda: smoothquant_alpha_curve(weight, x, w8, a8, alphas),
                             lambda: plain_curve(weight, x, alphas)], args.repeat)
    rows.append(["SmoothQuant QSNR curve, 21 alphas, W8A8, 768x768, 2048 tokens",
                 f"{ours:.2f}", f"{ref:.2f}", f"{ref / ours:.1f}x", "<= 1 s",
                 "yes" if ours <= 1 else "NO"])

    if not args.skip_big:
        big_w, big_x = make_layer(4096, 4096, 2048, seed=1)
        seen: list[float] = []
        start = time.perf_counter()
        gptq_quantize(big_w, big_x, INT4_G128, progress=seen.append)
        took = time.perf_counter() - start
        rows.append(["GPTQ int4 g128, 4096x4096, 2048 tokens (1 run, progress on)",
                     f"{took:.1f}", "-", "-", "<= 60 s", "yes" if took <= 60 else "NO"])
        print(f"progress callbacks: {len(seen)}, last {seen[-1]}", flush=True)

    print_table(f"Transforms (torch {torch.__version__}, {torch.get_num_threads()} threads, "
                f"medians of {args.repeat}, interleaved)",
                ["case", "ours (s)", "plain reference (s)", "speed-up", "target", "met"], rows)


if __name__ == "__main__":
    main()
