"""The single-layer results cache (no Streamlit): pipeline runs, figures and calibrated layers.

- `cached_result(configs, settings, uploads)`: the `PipelineResult` and its figures, keyed by
  the configs' field values (so comment or whitespace edits hit the cache), the data settings
  and the upload scope; at most `RESULT_ENTRIES`.
- `cached_layer(configs, settings, uploads)`: the calibrated layer `cached_result` built (kept,
  so the Teach tab and the safetensors export do not calibrate again); `LAYER_ENTRIES`.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from explorer.core.cache import store
from explorer.core.pipeline import (
    DataSettings,
    PipelineResult,
    ProgressCallback,
    build_figures,
    build_layer,
    config_key,
    run_pipeline,
)
from explorer.data.cache import Uploads, sample_data, upload_scope
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

RESULT_ENTRIES = 16
LAYER_ENTRIES = 2  # each a calibrated layer: weight, codes, dequantized weight, observers

Configs = Mapping[str, QuantConfig | None]
Computed = tuple[PipelineResult, dict[str, go.Figure]]


def result_key(configs: Configs, settings: DataSettings, uploads: Uploads | None = None) -> tuple:
    return config_key(configs), settings, upload_scope(settings, uploads)


def lookup_result(configs: Configs, settings: DataSettings,
                  uploads: Uploads | None = None) -> Computed | None:
    """The cached result and figures, or None when they must be computed."""
    return store("single.results", RESULT_ENTRIES).get(result_key(configs, settings, uploads))


def cached_result(configs: Configs, settings: DataSettings, uploads: Uploads | None = None,
                  progress: ProgressCallback | None = None) -> Computed:
    """Run the pipeline (or reuse its cached run) and build the figures."""
    key = result_key(configs, settings, uploads)

    def compute() -> Computed:
        result = run_pipeline(configs, sample_data(settings, uploads), progress,
                              on_layer=lambda layer: _layers().put(key, layer))
        return result, build_figures(result)

    return store("single.results", RESULT_ENTRIES).get_or_put(key, compute)


def lookup_layer(configs: Configs, settings: DataSettings,
                 uploads: Uploads | None = None) -> QuantLinear | None:
    """The calibrated layer behind a cached result (for exports), or None."""
    return _layers().get(result_key(configs, settings, uploads))


def cached_layer(configs: Configs, settings: DataSettings,
                 uploads: Uploads | None = None) -> QuantLinear:
    """The calibrated layer the pipeline built for ``configs`` on ``settings``; built (once)
    only when it has left the cache."""
    return _layers().get_or_put(result_key(configs, settings, uploads),
                                lambda: build_layer(configs, sample_data(settings, uploads)))


def _layers():
    return store("single.layers", LAYER_ENTRIES)
