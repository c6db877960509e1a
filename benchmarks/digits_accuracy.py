"""Accuracy of the quantized digits MLP at 8, 6 and 4 bits, per observer (Markdown tables).

Trains the MLP fresh in a temporary cache folder (so the training time is real), then runs
`explorer.core.model_quant.quantize_model` with the same observer and bit width for the weight
(per-channel, signed, symmetric) and the output (per-tensor, signed, symmetric), calibrated on
the 1437 training rows and evaluated on the 360 held-out rows. Also prints the 4-bit per-layer
table and the one-layer-at-a-time sensitivity.

    python benchmarks/digits_accuracy.py [--seed 0] [--bits 8 6 4]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table  # noqa: E402
from explorer.core.model_quant import layer_sensitivity, quantize_model  # noqa: E402
from explorer.data.digits import load_or_train_digits_model  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.quant_config import QuantConfig  # noqa: E402

OBSERVERS = {"MinMax": "MinmaxObserver", "Percentile": "PercentileObserver",
             "OMSE": "OmseObserver", "KL": "KLObserver"}


def make_configs(bits: int, observer: str, alpha: float = 0.9999) -> dict:
    """Weight per-channel, output per-tensor; both signed symmetric ``bits`` with ``observer``."""
    def cfg(mode: str) -> QuantConfig:
        return QuantConfig(calibration_mode=mode, bit_type=BitType(bits, True),
                           observer_type=observer, percentile_alpha=alpha)
    return {"weight": cfg("channel_wise"), "output": cfg("layer_wise"), "activation": None}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def db(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        digits = load_or_train_digits_model(seed=args.seed, cache_dir=cache)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        load_or_train_digits_model(seed=args.seed, cache_dir=cache)
        reload = time.perf_counter() - start
    data = (digits.train_x, digits.test_x, digits.test_y)
    print_table(f"Digits MLP (seed {args.seed})", ["", "value"], [
        ["training time (train_seconds)", f"{digits.train_seconds:.2f} s"],
        ["load_or_train, first call (data + training + save)", f"{wall:.2f} s"],
        ["load_or_train, cached", f"{reload * 1e3:.0f} ms"],
        ["fp32 held-out accuracy (360 rows)", pct(digits.accuracy())],
        ["fp32 train accuracy (1437 rows)", pct(digits.accuracy(x=digits.train_x,
                                                                 y=digits.train_y))],
    ])

    rows = []
    for bits in args.bits:
        for label, observer in OBSERVERS.items():
            start = time.perf_counter()
            res = quantize_model(digits.model, make_configs(bits, observer), *data)
            took = time.perf_counter() - start
            rows.append([f"W{bits}/O{bits}", label, pct(res.fp32_accuracy),
                         pct(res.quantized_accuracy),
                         f"{100 * -res.accuracy_drop + 0.0:+.1f}",
                         db(statistics.fmean(r.weight_qsnr for r in res.layers)),
                         " / ".join(db(r.output_qsnr) for r in res.layers),
                         db(res.layers[-1].cumulative_output_qsnr), f"{took:.2f} s"])
    print_table("Accuracy by bit width and observer (weight per-channel, output per-tensor)",
                ["bits", "observer", "fp32", "quantized", "change (points)",
                 "mean weight QSNR (dB)", "output QSNR fc1 / fc2 / fc3 (dB)",
                 "logits QSNR vs fp32 (dB)", "time"], rows)

    low = min(args.bits)
    res = quantize_model(digits.model, make_configs(low, "MinmaxObserver"), *data)
    print_table(f"Per layer at {low} bits, MinMax (QSNR in dB; output = the layer's own error, "
                "cumulative = vs the fp32 model)",
                ["layer", "shape", "weight QSNR", "output QSNR", "cumulative QSNR",
                 "output clipped"],
                [[r.name, f"{r.out_features} x {r.in_features}", db(r.weight_qsnr),
                  db(r.output_qsnr), db(r.cumulative_output_qsnr),
                  f"{100 * r.output_clip_fraction:.2f}%"] for r in res.layers])

    sens_rows = []
    for bits in sorted({low, 3}):
        sens = layer_sensitivity(digits.model, make_configs(bits, "MinmaxObserver"), *data)
        sens_rows.append([f"W{bits}/O{bits}"] + [pct(sens[n]) for n in digits.linear_names])
    print_table("Sensitivity: accuracy with only one layer quantized (MinMax)",
                ["bits"] + digits.linear_names, sens_rows)


if __name__ == "__main__":
    main()
