"""All benchmarks in one run, then the targets met or not.

    python benchmarks/run.py [--quick]

Sections: a. the full cycle against the raw torch floor; b. observers against torch.ao,
ModelOpt (when `requirements-bench.txt` is installed) and numpy; c. figure payloads;
d. peak memory; e. the explorer's refresh after an edit; f. the compare view's sweeps.
--quick uses smaller tensors (1M/16M observers, 16M percentile) for a fast check.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_compare, bench_observers, bench_pipeline  # noqa: E402
from benchmarks._common import print_table  # noqa: E402


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"# Benchmarks\n\nMachine: {machine()}\n")
    targets = []

    _, cycles = bench_pipeline.bench_cycles()
    big = cycles["4096x4096, 2048 tokens (MinMax)"]
    targets.append(["4096x4096 / 2048-token cycle within 3x of the raw floor",
                    f"{big['ratio']:.2f}x", big["ratio"] <= 3.0])
    payload = max(c["payload_max"] for c in cycles.values())
    targets.append(["figure payload <= 2 MB (largest figure)", f"{payload / 1024:.0f} KiB",
                    payload <= 2 * 2**20])
    _, memory_ratio = bench_pipeline.bench_memory()
    targets.append(["peak memory <= 3x the tensors", f"{memory_ratio:.2f}x",
                    memory_ratio <= 3.0])

    sizes = [1_000_000, 16_000_000] if args.quick else [1_000_000, 16_000_000, 64_000_000]
    kth = 16_000_000 if args.quick else 100_000_000
    _, observers = bench_observers.run(sizes, kth)
    one_m = observers[1_000_000]
    if "ModelOpt Histogram entropy" in one_m:
        ours_s, ours_clip = one_m["ours KLObserver"]
        peer_s, peer_clip = one_m["ModelOpt Histogram entropy"]
        diff = abs(ours_clip / peer_clip - 1)
        targets.append(["KLObserver >= 50x faster than ModelOpt entropy (1M), clip within 10%",
                        f"{peer_s / ours_s:.0f}x, clip {100 * diff:.1f}% apart",
                        peer_s / ours_s >= 50 and diff <= 0.10])
    else:
        targets.append(["KLObserver >= 50x faster than ModelOpt entropy", "ModelOpt not "
                        "installed (pip install -r requirements-bench.txt)", None])
    ratio = observers["percentile_vs_kthvalue"]
    targets.append([f"PercentileObserver <= 2x one torch.kthvalue ({kth / 1e6:g}M)",
                    f"{ratio:.2f}x", ratio <= 2.0])

    from benchmarks import bench_app_refresh
    refresh = statistics.median(bench_app_refresh.bench_pipeline(5))
    fresh, _ = bench_app_refresh.bench_app(5)
    print_table("Explorer refresh after an edit (default 768x768 scenario, median of 5)",
                ["what", "ms"], [["pipeline + figures + JSON", f"{refresh * 1e3:.0f}"],
                                 ["full AppTest rerun", f"{statistics.median(fresh) * 1e3:.0f}"]])
    targets.append(["default scenario full refresh <= 0.3 s (pipeline + figures + JSON)",
                    f"{refresh:.2f} s", refresh <= 0.3])

    sweep_s = bench_compare.measure()
    targets.append(["classic 4-config x 7-bit sweep <= 2 s", f"{sweep_s:.2f} s",
                    sweep_s <= 2.0])

    print_table("Targets", ["target", "measured", "met"],
                [[t, m, "n/a" if ok is None else ("met" if ok else "NOT met")]
                 for t, m, ok in targets])


if __name__ == "__main__":
    main()
