"""How long the explorer takes to re-render after an edit, and how big its figures are.

    python benchmarks/bench_app_refresh.py [--repeats N] [--skip-large]

Reports medians (after warm-up runs) of:
- pipeline: `run_pipeline` + `build_figures` + Plotly JSON for the default scenario
  (768x768, 8 x 256 calibration rows), each run with a new weight bit width;
- app, new config: a full AppTest rerun after editing the weight YAML's bits (not cached);
- app, cached: a rerun that returns to a config seen before (served from the result cache);
and the figure JSON sizes for the default layer and for a 4096x4096 layer.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer.core import cache  # noqa: E402
from explorer.core import state as S  # noqa: E402
from explorer.core.figures import figure_payload_bytes  # noqa: E402
from explorer.core.pipeline import (  # noqa: E402
    DataSettings,
    build_figures,
    run_pipeline,
)
from explorer.data.sources import make_sample_data  # noqa: E402
from quantlib.bit_type import BitType  # noqa: E402
from quantlib.config_loader import load_config_from_yaml  # noqa: E402

WARMUP = 3  # torch's first calls on new shapes are several times slower


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.1f} ms (min {min(samples) * 1e3:.1f}, " \
           f"n={len(samples)})"


def bench_pipeline(repeats: int) -> list[float]:
    configs = load_config_from_yaml(REPO / "configs" / S.DEFAULT_PRESET)
    settings = DataSettings()
    data = make_sample_data(settings)
    times = []
    for bits in itertools.islice(itertools.cycle(range(2, 17)), repeats + WARMUP):
        edited = dict(configs, weight=dataclasses.replace(configs["weight"],
                                                          bit_type=BitType(bits, True)))
        start = time.perf_counter()
        figures = build_figures(run_pipeline(edited, data))
        for fig in figures.values():
            fig.to_json()
        times.append(time.perf_counter() - start)
    return times[WARMUP:]


def bench_app(repeats: int) -> tuple[list[float], list[float]]:
    cache.clear_all()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    base = at.text_area(key=S.text_key("weight")).value
    fresh, cached = [], []
    bit_widths = itertools.cycle([b for b in range(2, 17) if b != 8])
    for _ in range(repeats + WARMUP):
        text = base.replace("bits: 8", f"bits: {next(bit_widths)}")
        start = time.perf_counter()
        at.text_area(key=S.text_key("weight")).input(text).run()
        fresh.append(time.perf_counter() - start)
        start = time.perf_counter()
        at.text_area(key=S.text_key("weight")).input(base).run()  # seen before: cached
        cached.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(at.exception)
    cache.clear_all()
    return fresh[WARMUP:], cached[WARMUP:]


def payload_sizes(settings: DataSettings) -> dict[str, int]:
    configs = load_config_from_yaml(REPO / "configs" / S.DEFAULT_PRESET)
    figures = build_figures(run_pipeline(configs, make_sample_data(settings)))
    return {name: figure_payload_bytes(fig) for name, fig in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-large", action="store_true", help="skip the 4096x4096 layer")
    args = parser.parse_args()
    pipeline = bench_pipeline(args.repeats)
    print(f"pipeline + figures + JSON (default 768x768): {_median_ms(pipeline)}")
    fresh, cached = bench_app(args.repeats)
    print(f"AppTest rerun, new config:                  {_median_ms(fresh)}")
    print(f"AppTest rerun, cached config:               {_median_ms(cached)}")
    layers = [DataSettings()]
    if not args.skip_large:
        layers.append(DataSettings(in_features=4096, out_features=4096, num_batches=2))
    for settings in layers:
        sizes = payload_sizes(settings)
        shape = f"{settings.out_features}x{settings.in_features}"
        largest = max(sizes, key=sizes.get)
        print(f"figure JSON, {shape}: total {sum(sizes.values()) / 1024:.0f} KiB, largest "
              f"{largest} {sizes[largest] / 1024:.0f} KiB (limit 2048 KiB per figure)")


if __name__ == "__main__":
    main()
