"""The Whole model tab's cache (no Streamlit): one `WholeModelSummary` per configs and seed."""

from __future__ import annotations

from collections.abc import Mapping

from explorer.core.cache import store
from explorer.core.pipeline import ProgressCallback, config_key
from explorer.data.cache import digits_model
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
