"""Observers side by side with torch.ao, ModelOpt (if installed) and numpy, on one tensor.

    python benchmarks/bench_observers.py [--sizes 1M,16M,64M] [--kl-only]

The KL table runs ours and ModelOpt's entropy calibrator interleaved, on four
distributions (Gaussian, Laplace, dense outliers 0.1% at 8x, sparse outliers 0.01% at 20x)
at 1M and 16M values, and gives medians, the time ratio and the threshold gap in bins.

Each row: update + get_quantization_params on the same N(0,1) tensor with 0.01% outliers,
per tensor, 8-bit symmetric. "clip" is the chosen max |range| (amax); "vs ours" compares it
with our observer of the same kind.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import best_time, print_table  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.observers import build_observer  # noqa: E402
from quantlib.quant_config import QuantConfig  # noqa: E402

HAS_MODELOPT = importlib.util.find_spec("modelopt") is not None


def make_tensor(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=gen)
    idx = torch.randint(0, n, (max(n // 10_000, 1),), generator=gen)
    x[idx] *= 20.0
    return x


def ours(observer: str, x: torch.Tensor, **kw):
    cfg = QuantConfig(observer_type=observer, bit_type=BitType(8, True), **kw)

    def run():
        obs = build_observer(cfg)
        obs.update(x)
        scale, _ = obs.get_quantization_params()
        return float(scale) * 127.5

    return run


def torch_ao(kind: str, x: torch.Tensor):
    from torch.ao.quantization import observer as ao

    def run():
        if kind == "MinMaxObserver":
            obs = ao.MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        else:
            obs = ao.HistogramObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        obs(x)
        scale, _ = obs.calculate_qparams()
        return float(scale) * 127.5

    return run


def modelopt(method: str, x: torch.Tensor):
    from modelopt.torch.quantization.calib import HistogramCalibrator, MaxCalibrator

    def run():
        if method == "max":
            cal = MaxCalibrator(num_bits=8)
            cal.collect(x)
            return float(cal.compute_amax())
        cal = HistogramCalibrator(num_bits=8, num_bins=2048)
        cal.collect(x)
        kwargs = {"percentile": 99.99} if method == "percentile" else {}
        return float(cal.compute_amax(method, **kwargs))

    return run


def numpy_percentile(x: torch.Tensor):
    arr = x.numpy()

    def run():
        lo, hi = np.percentile(arr, [0.01, 99.99])
        return max(-lo, hi)

    return run


def bench_size(n: int, heavy_peers: bool) -> tuple[list[list[object]], dict]:
    x = make_tensor(n)
    label = f"{n / 1e6:g}M"
    cases = [
        ("ours MinmaxObserver", ours("MinmaxObserver", x), None),
        ("torch.ao MinMaxObserver", torch_ao("MinMaxObserver", x), "ours MinmaxObserver"),
        ("ours PercentileObserver (99.99%)", ours("PercentileObserver", x,
                                                  percentile_alpha=0.9999), None),
        ("numpy.percentile (99.99%)", numpy_percentile(x), "ours PercentileObserver (99.99%)"),
        ("ours OmseObserver", ours("OmseObserver", x), None),
        ("ours KLObserver", ours("KLObserver", x), None),
        ("ours EmaMinmaxObserver", ours("EmaMinmaxObserver", x), None),
    ]
    if heavy_peers:
        cases.append(("torch.ao HistogramObserver", torch_ao("HistogramObserver", x),
                      "ours OmseObserver"))
    if HAS_MODELOPT:
        cases += [
            ("ModelOpt MaxCalibrator", modelopt("max", x), "ours MinmaxObserver"),
            ("ModelOpt Histogram entropy", modelopt("entropy", x), "ours KLObserver"),
            ("ModelOpt Histogram mse", modelopt("mse", x), "ours OmseObserver"),
            ("ModelOpt Histogram percentile", modelopt("percentile", x),
             "ours PercentileObserver (99.99%)"),
        ]
    results: dict[str, tuple[float, float]] = {}
    rows = []
    for name, fn, ref in cases:
        repeat = 1 if (n >= 16_000_000 or "entropy" in name or "Histogram" in name) else 3
        clip = fn()
        seconds = best_time(fn, repeat=repeat, warmup=0)
        results[name] = (seconds, clip)
        vs = ""
        if ref is not None and ref in results:
            ref_s, ref_clip = results[ref]
            vs = f"{seconds / ref_s:.1f}x our time; clip {100 * (clip / ref_clip - 1):+.1f}%"
        rows.append([label, name, f"{seconds * 1e3:.1f}", f"{clip:.4f}", vs])
        print(f"  {label} {name}: {seconds * 1e3:.1f} ms, clip {clip:.4f}", file=sys.stderr)
    return rows, results


def bench_percentile_vs_kthvalue(n: int) -> tuple[list[object], float]:
    x = make_tensor(n)
    t_ours = best_time(ours("PercentileObserver", x, percentile_alpha=0.9999), 2, 1)
    k = int(0.9999 * (n - 1)) + 1
    t_kth = best_time(lambda: torch.kthvalue(x, k), 2, 1)
    row = [f"{n / 1e6:g}M", f"{t_ours * 1e3:.0f}", f"{t_kth * 1e3:.0f}", f"{t_ours / t_kth:.2f}"]
    return row, t_ours / t_kth


def run(sizes: list[int], kth_size: int) -> tuple[str, dict]:
    """All observer tables; metrics: per size the {name: (seconds, clip)} results, and the
    Percentile / kthvalue time ratio."""
    rows, metrics = [], {}
    # first, while memory is fresh: both sides allocate hundreds of MB at 100M
    row, ratio = bench_percentile_vs_kthvalue(kth_size)
    for n in sizes:
        size_rows, results = bench_size(n, heavy_peers=n <= 16_000_000)
        rows += size_rows
        metrics[n] = results
    out = print_table("Observers (update + qparams, one tensor, per tensor int8)",
                      ["N", "observer", "ms", "clip (amax)", "vs peer"], rows)
    out += print_table("PercentileObserver (both tails) vs one torch.kthvalue",
                       ["N", "ours ms", "kthvalue ms", "ratio"], [row])
    metrics["percentile_vs_kthvalue"] = ratio
    return out, metrics


KL_DISTRIBUTIONS = ("gaussian", "laplace", "dense-outlier", "sparse-outlier")


def make_distribution(kind: str, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if kind == "laplace":
        e = torch.empty(2, n).exponential_(generator=gen)
        return (e[0] - e[1]) / 2**0.5
    x = torch.randn(n, generator=gen)
    if kind != "gaussian":
        share, factor = (1e-3, 8.0) if kind == "dense-outlier" else (1e-4, 20.0)
        idx = torch.randperm(n, generator=gen)[:max(1, int(n * share))]
        x[idx] *= factor
    return x


def bench_kl_vs_modelopt(sizes=(1_000_000, 16_000_000), repeat=5) -> tuple[str, dict]:
    """KLObserver vs ModelOpt HistogramCalibrator('entropy'), 8-bit, 2048 bins, interleaved;
    medians. The gap is |ours - theirs| in histogram bins (amax / 2048)."""
    import time

    rows, metrics = [], {}
    for n in sizes:
        for kind in KL_DISTRIBUTIONS:
            x = make_distribution(kind, n)
            fns = {"ours": ours("KLObserver", x), "modelopt": modelopt("entropy", x)}
            times = {name: [] for name in fns}
            clips = {}
            for _ in range(repeat):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    clips[name] = fn()
                    times[name].append(time.perf_counter() - start)
            med = {name: float(np.median(t)) for name, t in times.items()}
            amax = float(x.abs().max())
            gap = abs(clips["ours"] - clips["modelopt"]) / (amax / 2048)
            ratio = med["modelopt"] / med["ours"]
            metrics[(n, kind)] = (med["ours"], med["modelopt"], ratio, gap)
            rows.append([f"{n / 1e6:g}M", kind, f"{med['ours'] * 1e3:.1f}",
                         f"{med['modelopt'] * 1e3:.0f}", f"{ratio:.0f}x", f"{gap:.2f}"])
            print(f"  {rows[-1]}", file=sys.stderr)
    out = print_table("KLObserver vs ModelOpt entropy (8-bit, 2048 bins, medians, interleaved)",
                      ["N", "data", "ours ms", "ModelOpt ms", "speed-up", "gap (bins)"], rows)
    return out, metrics


def parse_size(text: str) -> int:
    return int(float(text.rstrip("M")) * 1e6)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1M,16M,64M")
    parser.add_argument("--kth-size", default="100M")
    parser.add_argument("--kl-only", action="store_true",
                        help="only the KLObserver vs ModelOpt table")
    args = parser.parse_args(argv)
    if HAS_MODELOPT:
        bench_kl_vs_modelopt()
    else:
        print("ModelOpt not installed: pip install -r requirements-bench.txt", file=sys.stderr)
    if args.kl_only:
        return
    run([parse_size(s) for s in args.sizes.split(",")], parse_size(args.kth_size))


if __name__ == "__main__":
    main()
