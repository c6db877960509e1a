"""The Whole model tab's caches (no Streamlit): one `WholeModelSummary` per configs and seed
(digits MLP), and one `EncoderSummary` per encoder and configs (MiniLM, your checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping

from explorer.core.cache import store
from explorer.core.pipeline import ProgressCallback, config_key
from explorer.data.cache import digits_model, text_encoder
from explorer.data.corpus import load_corpus
from explorer.data.encoders import ENCODER_LABELS
from explorer.model.encoder_quant import (
    EncoderEval,
    EncoderSummary,
    prepare_encoder_eval,
    run_encoder_whole_model,
)
from explorer.model.summary import WholeModelSummary, run_whole_model
from quantlib.quant_config import QuantConfig

WHOLE_MODEL_ENTRIES = 16

Configs = Mapping[str, QuantConfig | None]


def whole_model_key(configs: Configs, seed: int, sensitivity: bool) -> tuple:
    return "whole model", config_key(configs), seed, sensitivity


def lookup_whole_model(configs: Configs, seed: int,
                       sensitivity: bool = True) -> WholeModelSummary | None:
    """The cached whole-model summary, or None when it must be computed."""
    return _summaries().get(whole_model_key(configs, seed, sensitivity))


def whole_model(configs: Configs, seed: int, sensitivity: bool = True,
                progress: ProgressCallback | None = None) -> WholeModelSummary:
    """Every Linear of the digits MLP (``seed``) quantized with ``configs`` (cached by the
    configs' values, the seed and whether the per-layer sensitivity is included)."""
    return _summaries().get_or_put(
        whole_model_key(configs, seed, sensitivity),
        lambda: run_whole_model(digits_model(seed), configs, sensitivity, progress))


def _summaries():
    return store("model.summaries", WHOLE_MODEL_ENTRIES)


# --- sentence encoders (MiniLM, your checkpoint) -----------------------------------------------

ENCODER_SUMMARY_ENTRIES = 16
ENCODER_EVAL_ENTRIES = 2


def encoder_eval(source: str, progress: ProgressCallback | None = None) -> EncoderEval:
    """The tokenised corpus and fp32 evaluation embeddings of encoder ``source`` (cached)."""
    return store("model.encoder_eval", ENCODER_EVAL_ENTRIES).get_or_put(
        source, lambda: prepare_encoder_eval(text_encoder(source), load_corpus(), progress))


def lookup_encoder_summary(source: str, configs: Configs,
                           sensitivity: bool = False) -> EncoderSummary | None:
    """The cached summary (one measured with sensitivity serves a request without it)."""
    found = store("model.encoder_summaries", ENCODER_SUMMARY_ENTRIES)
    hit = found.get((source, config_key(configs), True))
    return hit if hit is not None or sensitivity else found.get(
        (source, config_key(configs), False))


def encoder_summary(source: str, configs: Configs, sensitivity: bool = False,
                    progress: ProgressCallback | None = None) -> EncoderSummary:
    """Every Linear of encoder ``source`` quantized with ``configs`` (cached by config values
    and whether the 36 one-layer runs are included)."""
    hit = lookup_encoder_summary(source, configs, sensitivity)
    if hit is not None:
        return hit
    report = progress or (lambda fraction, text: None)
    data = encoder_eval(source, lambda f, text: report(0.1 * f, f"fp32 model, {text}"))
    summary = run_encoder_whole_model(
        text_encoder(source), data, configs, ENCODER_LABELS[source], sensitivity,
        lambda f, text: report(0.1 + 0.9 * f, text))
    store("model.encoder_summaries", ENCODER_SUMMARY_ENTRIES).put(
        (source, config_key(configs), sensitivity), summary)
    return summary
