"""MiniLM (all-MiniLM-L6-v2) whole-model table: task metrics per quantization config.

Prints a markdown table (mean cosine of quantized vs fp32 sentence embeddings, paraphrase
retrieval) for W8A8 / W4A16 / W4A8, per tensor vs per channel, and the cost timings (model
load, first layer capture, a cached re-read in a fresh process's path). Add rows to `ROWS`
(e.g. block-wise formats: ``{"calibration_mode": "block_wise", "block_size": 32,
"bit_type": {"name": "mxfp4"}}``) once quantlib supports them: configs go straight to
QuantLinear.

    python benchmarks/minilm_table.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantlib.config_loader import load_config_from_string  # noqa: E402


def section(bits: int, mode: str, signed: bool = True, extra: str = "") -> str:
    name = f"{'' if signed else 'u'}int{bits}"
    return (f"calibration_mode: {mode}\nbit_type:\n  bits: {bits}\n  signed: {str(signed).lower()}"
            f"\n  name: {name}\nobserver_type: MinmaxObserver\nquantization_method: Uniform\n"
            f"enable_profiler: false\n{extra}")


def configs(w_bits: int, a_bits: int | None, mode: str) -> dict:
    """Weights ``w_bits`` and, unless None, input activations and outputs ``a_bits``, all
    ``mode`` (layer_wise = per tensor; channel_wise = per output channel for weights, per
    feature for activations). Without activations the outputs stay at 16 bits (A16)."""
    out_bits = a_bits or 16
    text = (f"weight:\n{_indent(section(w_bits, mode))}outputs:\n"
            f"{_indent(section(out_bits, mode))}")
    if a_bits is not None:
        text += f"activation:\n{_indent(section(a_bits, mode))}"
    return load_config_from_string(text)


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


ROWS = [(f"{name}, {'per tensor' if mode == 'layer_wise' else 'per channel'}", w, a, mode)
        for name, w, a in (("W8A8", 8, 8), ("W4A16", 4, None), ("W4A8", 4, 8))
        for mode in ("layer_wise", "channel_wise")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="default: a fresh temp dir")
    args = parser.parse_args()
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="minilm-bench-"))
    timings = {}
    start = time.perf_counter()
    from explorer.data import encoders
    from explorer.data.corpus import load_corpus
    from explorer.data.hf_model import load_text_encoder
    from explorer.model.encoder_quant import prepare_encoder_eval, run_encoder_whole_model

    directory = encoders.encoder_dir("minilm")
    encoder = load_text_encoder(directory)
    timings["import + load MiniLM"] = time.perf_counter() - start
    start = time.perf_counter()
    encoders.load_layer_sample(directory, "encoder.layer.0.output.dense", lambda: encoder,
                               cache_dir)
    timings["capture one layer (first use, writes the disk cache)"] = time.perf_counter() - start
    start = time.perf_counter()
    encoders.load_channel_stats(directory, lambda: encoder, cache_dir)
    timings["channel statistics of every layer (first use)"] = time.perf_counter() - start
    probe = ("import sys,time; t=time.perf_counter(); from explorer.data import encoders; "
             "d=encoders.encoder_dir('minilm'); "
             f"encoders.load_layer_sample(d,'encoder.layer.0.output.dense',None,{str(cache_dir)!r});"
             f"encoders.load_channel_stats(d,None,{str(cache_dir)!r}); "
             "print(time.perf_counter()-t, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.split()
    timings["later use in a fresh process (disk cache; transformers not imported: "
            f"{out[1] == 'False'})"] = float(out[0])
    start = time.perf_counter()
    data = prepare_encoder_eval(encoder, load_corpus())
    timings["fp32 evaluation embeddings"] = time.perf_counter() - start
    print("| config | mean cosine vs fp32 | paraphrase retrieval | seconds |")
    print("|---|---|---|---|")
    fp32 = None
    for label, w, a, mode in ROWS:
        s = run_encoder_whole_model(encoder, data, configs(w, a, mode), "MiniLM")
        fp32 = s.fp32_retrieval
        print(f"| {label} | {s.mean_cosine:.4f} | {100 * s.retrieval:.1f} % | "
              f"{s.seconds['quantize']:.1f} |", flush=True)
    print(f"\nfp32 paraphrase retrieval: {100 * fp32:.1f} % ({len(data.eval_pairs)} pairs, "
          f"{data.fp32_embeddings.shape[0]} evaluation sentences)\n")
    print("| cost | seconds |\n|---|---|")
    for what, seconds in timings.items():
        print(f"| {what} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
