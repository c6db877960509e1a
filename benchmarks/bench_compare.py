"""The compare view's bit-width sweep: the classic set on the default layer.

    python benchmarks/bench_compare.py [--repeat N] [--layout channel_wise|layer_wise|both]

Default layer: 768x768, 8 batches x 256 tokens (the sidebar's defaults), the seed's
attn_config (channel_wise weight int8 / output uint8, Uniform) turned into the classic set
(MinMax, Percentile, OMSE, KL for weight and output). Timed, side by side:

- the sweep: `explorer.compare.runs.sweep_layer` over bits 2..8 for the four calibrated layers
  (the observers re-derive qparams from the data they hold; no recalibration);
- `quantlib.analysis.sweep_bit_widths` on the same layers (every width through
  ``with_bit_type``, range observers included);
- per observer, the sweep's share;
- the naive way: a fresh build + calibration of each config at every width;
- the whole compare run (build, calibrate, evaluate, sweep) of the four configs.

`measure()` (used by benchmarks/run.py) returns the median seconds of the classic sweep.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import best_time, print_table  # noqa: E402
from explorer.compare import runs as C  # noqa: E402
from explorer.core.pipeline import DataSettings, build_layer  # noqa: E402
from explorer.data.sources import make_sample_data  # noqa: E402
from quantlib.analysis import sweep_bit_widths  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.config_loader import load_config_from_string  # noqa: E402

DOCUMENT = (ROOT / "configs" / "attn_config.yaml").read_text(encoding="utf-8")


def classic_configs(layout: str = "channel_wise") -> dict[str, dict]:
    """The classic set of the seed's config, optionally switched to layer_wise."""
    out = {}
    for name, text in C.classic_set(DOCUMENT):
        configs = load_config_from_string(text)
        if layout == "layer_wise":
            configs = {k: None if c is None else dataclasses.replace(
                c, calibration_mode="layer_wise") for k, c in configs.items()}
        out[name] = configs
    return out


def calibrated_layers(data, layout: str = "channel_wise") -> dict:
    return {name: build_layer(C.profiled(configs), data)
            for name, configs in classic_configs(layout).items()}


def classic_sweep(layers, data) -> list:
    return [C.sweep_layer(layer, data.eval_batch, C.SWEEP_BITS) for layer in layers.values()]


def measure(repeat: int = 3, layout: str = "channel_wise") -> float:
    """Median seconds of the classic 4-config x 7-width sweep on the default layer."""
    data = make_sample_data(DataSettings())
    layers = calibrated_layers(data, layout)
    return best_time(lambda: classic_sweep(layers, data), repeat=repeat, warmup=1)


def _naive(configs, data) -> None:
    for bits in C.SWEEP_BITS:
        at_bits = {k: c if c is None or k == "activation" else dataclasses.replace(
            c, bit_type=BitType(bits, c.bit_type.signed)) for k, c in configs.items()}
        layer = build_layer(at_bits, data)
        layer(data.eval_batch)


def run(repeat: int = 3, layouts=("channel_wise", "layer_wise")) -> dict[str, float]:
    data = make_sample_data(DataSettings())
    results = {}
    for layout in layouts:
        results.update(_run_layout(layout, data, repeat))
    return results


def _run_layout(layout: str, data, repeat: int) -> dict[str, float]:
    layers = calibrated_layers(data, layout)
    rows = []
    sweep = best_time(lambda: classic_sweep(layers, data), repeat=repeat, warmup=1)
    rows.append(["classic sweep: compare.sweep_layer, 4 configs x 7 widths",
                 f"{sweep:.2f}", "1.00x"])
    lib = best_time(lambda: [sweep_bit_widths(layer, data.eval_batch, C.SWEEP_BITS)
                             for layer in layers.values()], repeat=1, warmup=0)
    rows.append(["same, quantlib.analysis.sweep_bit_widths", f"{lib:.2f}",
                 f"{lib / sweep:.2f}x"])
    for name, layer in layers.items():
        one = best_time(lambda lay=layer: C.sweep_layer(lay, data.eval_batch, C.SWEEP_BITS),
                        repeat=1, warmup=0)
        rows.append([f"  of which {name} (7 widths)", f"{one:.2f}", ""])
    configs = classic_configs(layout)
    naive = best_time(lambda: [_naive(cfg, data) for cfg in configs.values()], repeat=1,
                      warmup=0)
    rows.append(["naive: rebuild + recalibrate the 4 configs at each of 7 widths",
                 f"{naive:.2f}", f"{naive / sweep:.2f}x"])
    start = time.perf_counter()
    runs = {name: C.run_config(cfg, data) for name, cfg in configs.items()}
    whole = time.perf_counter() - start
    rows.append(["whole compare run: build + calibrate + evaluate + sweep, 4 configs",
                 f"{whole:.2f}", ""])
    for name, r in runs.items():
        rows.append([f"  {name}: observer / calibration / sweep ms",
                     f"{r.observer_ms:.0f} / {r.calibration_ms:.0f} / {r.sweep_ms:.0f}", ""])
    print_table(f"Compare view, default layer 768x768, 8x256 tokens, {layout} classic set "
                f"(median of {repeat} for the sweep)", ["what", "seconds", "vs sweep"], rows)
    return {f"{layout} sweep": sweep, f"{layout} compare run": whole}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layout", choices=["channel_wise", "layer_wise", "both"],
                        default="both")
    args = parser.parse_args(argv)
    layouts = ("channel_wise", "layer_wise") if args.layout == "both" else (args.layout,)
    results = run(args.repeat, layouts)
    print("\n" + "\n".join(f"{k}: {v:.2f} s" for k, v in results.items()))
    print(f"target: classic channel_wise sweep <= 2 s -> "
          f"{'met' if results.get('channel_wise sweep', 0) <= 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
