"""Whole-model quantization of a sentence encoder (MiniLM or your checkpoint), no Streamlit.

`run_encoder_whole_model` swaps every ``nn.Linear`` (36 in MiniLM) for a `QuantLinear` with
the current configs (weight, output and, when enabled, input activation), calibrates all of
them at once on the corpus's calibration sentences (fp32 forward, each observer sees the fp32
activations that reach it; sentences are batched by token length, so no padding token ever
reaches an observer), and embeds the evaluation sentences with the quantized copy. Task
metrics on the evaluation sentences:

- ``mean_cosine``: the mean cosine similarity of each sentence's quantized embedding with its
  fp32 embedding (1.0 = unchanged);
- ``retrieval``: paraphrase retrieval accuracy: for each sentence of an evaluation pair, is its
  paraphrase its nearest neighbour (cosine) among all other evaluation sentences, distractors
  included; ``fp32_retrieval`` is the same for the fp32 model.

With ``sensitivity`` it also measures each Linear alone (only that layer quantized, the rest
fp32, reusing the calibrated layers): cosine and retrieval per layer. `EncoderSummary` holds
only numbers, so it is cheap to cache.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from explorer.core.model_quant import calibrating, swap_quant_linears
from explorer.core.transform_step import install_model_transform
from explorer.data.corpus import CorpusSplit
from explorer.data.hf_model import TextEncoder, TokenBatch, embed, encode_batches
from quantlib.quant_config import QuantConfig

__all__ = [
    "EncoderEval",
    "EncoderSummary",
    "prepare_encoder_eval",
    "retrieval_accuracy",
    "run_encoder_whole_model",
]

Progress = Callable[[float, str], None]
SENSITIVITY_BATCH = 128  # padded batches (profiling off): fewer, larger forwards


@dataclass(frozen=True)
class EncoderEval:
    """What every run on one encoder shares: the calibration batches (grouped by length),
    the evaluation batches (grouped by length, and padded for the sensitivity runs), the
    evaluation pairs and the fp32 embeddings [eval sentences, hidden]."""

    calibration: tuple[TokenBatch, ...]
    evaluation: tuple[TokenBatch, ...]
    evaluation_padded: tuple[TokenBatch, ...]
    eval_pairs: tuple[tuple[int, int], ...]
    fp32_embeddings: torch.Tensor
    calibration_tokens: int


@dataclass(frozen=True)
class EncoderSummary:
    """One config applied to every Linear of an encoder (see the module docstring).

    ``layers``: one row per Linear: name, shape, weight QSNR (dB) and weight clip fraction
    in [0, 1]; ``sensitivity``: ``{layer: (mean cosine, retrieval)}`` with only that
    layer quantized (empty when not measured); ``seconds``: wall time per phase."""

    model: str
    layers: tuple[dict, ...]
    mean_cosine: float
    min_cosine: float
    retrieval: float
    fp32_retrieval: float
    num_calibration_sentences: int
    num_calibration_tokens: int
    num_eval_sentences: int
    num_eval_pairs: int
    sensitivity: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def retrieval_accuracy(embeddings: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> float:
    """Share in [0, 1] of pair sentences whose nearest other sentence (cosine) in
    ``embeddings`` [sentences, hidden] (L2-normalised) is their paraphrase."""
    sims = embeddings @ embeddings.T
    sims.fill_diagonal_(-math.inf)
    nearest = sims.argmax(dim=1)
    hits = sum(int(nearest[i] == j) + int(nearest[j] == i) for i, j in pairs)
    return hits / (2 * len(pairs))


def prepare_encoder_eval(encoder: TextEncoder, split: CorpusSplit,
                         progress: Progress | None = None) -> EncoderEval:
    """Tokenise the corpus split and embed the evaluation sentences in fp32."""
    tok = encoder.tokenizer
    calibration = tuple(encode_batches(tok, split.calibration, same_length=True))
    evaluation = tuple(encode_batches(tok, split.evaluation, same_length=True))
    padded = tuple(encode_batches(tok, split.evaluation, batch_size=SENSITIVITY_BATCH))
    fp32 = embed(encoder.model, evaluation, progress)
    tokens = sum(int(b.attention_mask.sum()) for b in calibration)
    return EncoderEval(calibration, evaluation, padded, split.eval_pairs, fp32, tokens)


def run_encoder_whole_model(encoder: TextEncoder, data: EncoderEval,
                            configs: Mapping[str, QuantConfig | None], label: str = "encoder",
                            sensitivity: bool = False, progress: Progress | None = None
                            ) -> EncoderSummary:
    """Quantize every Linear of ``encoder`` with ``configs`` and measure (module docstring)."""
    report = progress or (lambda fraction, text: None)
    transform = configs.get("transform")
    configs = {"weight": configs["weight"], "output": configs["output"],
               "activation": configs.get("activation")}
    share = 0.3 if sensitivity else 1.0
    start = time.perf_counter()
    qmodel, qlayers = swap_quant_linears(encoder.model, configs)
    if transform is not None:  # every Linear with its own fp32 calibration inputs
        install_model_transform(encoder.model, qlayers, transform, lambda model: [
            model(**batch.inputs()) for batch in data.calibration],
            lambda f, text: report(0.0, text))
    steps = len(data.calibration)
    with torch.no_grad(), calibrating(qlayers.values()):  # fp32 forward, observers update
        for i, batch in enumerate(data.calibration):
            qmodel(**batch.inputs())
            report(share * 0.7 * (i + 1) / steps, f"calibrating {len(qlayers)} layers: batch "
                                                  f"{i + 1}/{steps}")
    for q in qlayers.values():
        q.compute_output_quant_params()
        # Output profiling would cost more than the forward itself (histograms per layer):
        # the table keeps the weight statistics, computed when the layer was built.
        q.mode, q.enable_profiling = "quantized", False
    quantized = embed(qmodel, data.evaluation, lambda f, text: report(
        share * (0.7 + 0.3 * f), f"quantized model, {text}"))
    cosine = (quantized * data.fp32_embeddings).sum(dim=1)
    seconds = {"quantize": time.perf_counter() - start}
    rows = tuple(_layer_row(name, q) for name, q in qlayers.items())
    per_layer: dict[str, tuple[float, float]] = {}
    if sensitivity:
        start = time.perf_counter()
        for q in qlayers.values():
            q.mode = "fp32"  # fp32 mode computes exactly the fp32 Linear
        names = list(qlayers)
        for i, name in enumerate(names):
            qlayers[name].mode = "quantized"
            alone = embed(qmodel, data.evaluation_padded)
            qlayers[name].mode = "fp32"
            per_layer[name] = (float((alone * data.fp32_embeddings).sum(dim=1).mean()),
                               retrieval_accuracy(alone, data.eval_pairs))
            report(share + (1 - share) * (i + 1) / len(names),
                   f"only one layer quantized: {name} ({i + 1}/{len(names)})")
        seconds["sensitivity"] = time.perf_counter() - start
    report(1.0, "Done")
    return EncoderSummary(
        model=label, layers=rows, mean_cosine=float(cosine.mean()),
        min_cosine=float(cosine.min()), retrieval=retrieval_accuracy(quantized, data.eval_pairs),
        fp32_retrieval=retrieval_accuracy(data.fp32_embeddings, data.eval_pairs),
        num_calibration_sentences=sum(len(b.rows) for b in data.calibration),
        num_calibration_tokens=data.calibration_tokens,
        num_eval_sentences=int(data.fp32_embeddings.shape[0]),
        num_eval_pairs=len(data.eval_pairs), sensitivity=per_layer, seconds=seconds)


def _layer_row(name: str, q) -> dict:
    stats = q.weight_profiler.get_results()["statistics"]
    return {"name": name, "shape": f"{q.out_features} x {q.in_features}",
            "weight_qsnr": float(stats["qsnr"]),
            "weight_clip_fraction": float(stats["clip_fraction"])}
