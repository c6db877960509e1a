"""Every cache of the explorer, in one module; each is bounded.

- `sample_data(settings)`: seeded tensors, keyed by the (frozen, hashable) `DataSettings`.
- `cached_result(configs, settings, progress)`: the `PipelineResult` and its figures, keyed by
  the configs' field values (so comment or whitespace edits hit the cache) and the data
  settings. Tensors are never hashed.
- `digits_model(seed)`: the trained digits MLP (2 seeds); `whole_model(configs, seed)`: its
  `WholeModelSummary` with every Linear quantized, keyed by config values and seed. Uploads are
  keyed by the digest of their bytes (computed once, at upload).
- `cached_layer(configs, settings)`: the calibrated layer `cached_result` built (kept, so the
  Teach tab and the safetensors export do not calibrate again).
- `cached_analysis(configs, settings)`: the Teach tab's calibrated layer and per-tensor
  views (2 entries), keyed like the results.
- `compare_run` / `compare_sweep` / `compare_clip_view`: the Compare tab's per-config runs
  and bit-width sweeps (keyed by config values, data settings and widths) and its clip views;
  the calibrated layers behind the sweeps (at most 4).

The result cache is a small LRU held by ``st.cache_resource`` rather than an
``@st.cache_data`` function, because the pipeline reports progress to a progress bar drawn
outside it, and Streamlit would try to replay that element on a cache hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping

import plotly.graph_objects as go
import streamlit as st

from explorer import state as S
from explorer.compare import (
    MAX_CONFIGS,
    ConfigRun,
    Sweep,
    calibrate_config,
    calibration_outputs,
    sweep_layer,
)
from explorer.compare_clip import ClipView, clip_view
from explorer.data_sources import UploadedTensors
from explorer.digits_model import DigitsModel, load_or_train_digits_model
from explorer.model_view import WholeModelSummary, run_whole_model
from explorer.pipeline import (
    DataSettings,
    PipelineResult,
    ProgressCallback,
    SampleData,
    build_figures,
    build_layer,
    config_key,
    make_sample_data,
    run_pipeline,
)
from explorer.teach_data import LayerAnalysis, analyse_layer
from quantlib.quant_config import QuantConfig
from quantlib.quant_linear import QuantLinear

SAMPLE_DATA_ENTRIES = 4
RESULT_ENTRIES = 16
LAYER_ENTRIES = 2  # each a calibrated layer: weight, codes, dequantized weight, observers

Computed = tuple[PipelineResult, dict[str, go.Figure]]


class BoundedLRU:
    """A thread-safe least-recently-used map holding at most ``max_entries`` items."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def get_or_put(self, key: Hashable, make: Callable[[], object]):
        """The value under ``key``, or ``make()`` stored there first."""
        hit = self.get(key)
        if hit is None:
            hit = make()
            self.put(key, hit)
        return hit

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def sample_data(settings: DataSettings) -> SampleData:
    """Sample tensors for ``settings`` (shared, never mutated): seeded synthetic ones, or a
    real layer (the digits model from `digits_model`, uploads from this session's state)."""
    uploads = session_uploads() if settings.source == "upload" else None
    digits = digits_model(settings.seed) if settings.source == "digits" else None
    return _sample_data(settings, upload_scope(settings), uploads, digits)


@st.cache_resource(max_entries=SAMPLE_DATA_ENTRIES, show_spinner=False)
def _sample_data(settings: DataSettings, held: tuple[str, ...], _uploads,
                 _digits) -> SampleData:
    # The settings key it (they hold the upload digests and the digits seed), with the
    # uploads this session holds (`upload_scope`).
    return make_sample_data(settings, _uploads, _digits)


def upload_scope(settings: DataSettings, state=None) -> tuple[str, ...]:
    """The digests of the uploads ``settings`` reads that this session holds; part of the key
    of everything built from uploads. The caches are shared by every session and a link
    carries the digests, so without it a session opened from someone's link would get their
    results (and the safetensors export) of tensors it never uploaded. A session that holds
    the same file (same digest) shares the entries: it has the data anyway."""
    if settings.source != "upload":
        return ()
    held = session_uploads(state)
    return tuple(d for d in (settings.upload_weight, settings.upload_inputs) if d and d in held)


@st.cache_resource(max_entries=1, show_spinner=False)
def _result_store() -> BoundedLRU:
    return BoundedLRU(RESULT_ENTRIES)


def result_key(configs: Mapping[str, QuantConfig | None], settings: DataSettings) -> tuple:
    return config_key(configs), settings, upload_scope(settings)


def lookup_result(configs: Mapping[str, QuantConfig | None],
                  settings: DataSettings) -> Computed | None:
    """The cached result and figures, or None when they must be computed."""
    return _result_store().get(result_key(configs, settings))


def cached_result(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                  progress: ProgressCallback | None = None) -> Computed:
    """Run the pipeline (or reuse its cached run) and build the figures."""
    key = result_key(configs, settings)

    def compute() -> Computed:
        result = run_pipeline(configs, settings, progress, data=sample_data(settings),
                              on_layer=lambda layer: _layer_store().put(key, layer))
        return result, build_figures(result)

    return _result_store().get_or_put(key, compute)


@st.cache_resource(max_entries=1, show_spinner=False)
def _layer_store() -> BoundedLRU:
    return BoundedLRU(LAYER_ENTRIES)


def lookup_layer(configs: Mapping[str, QuantConfig | None],
                 settings: DataSettings) -> QuantLinear | None:
    """The calibrated layer behind a cached result (for exports), or None."""
    return _layer_store().get(result_key(configs, settings))


def cached_layer(configs: Mapping[str, QuantConfig | None], settings: DataSettings) -> QuantLinear:
    """The calibrated layer the pipeline built for ``configs`` on ``settings``; built (once)
    only when it has left the cache."""
    return _layer_store().get_or_put(result_key(configs, settings),
                                     lambda: build_layer(configs, sample_data(settings)))


def clear_all() -> None:
    """Empty every cache (tests call this between cases)."""
    st.cache_resource.clear()


# --- real data / whole model ---------------------------------------------------------------

DIGITS_ENTRIES = 2
WHOLE_MODEL_ENTRIES = 16
_DIGITS_LOCK = threading.Lock()


@st.cache_resource(max_entries=1, show_spinner=False)
def _digits_store() -> BoundedLRU:
    return BoundedLRU(DIGITS_ENTRIES)


def digits_cached(seed: int) -> bool:
    """Whether the digits model for ``seed`` is already in memory."""
    return _digits_store().get(seed) is not None


def digits_model(seed: int, progress: ProgressCallback | None = None) -> DigitsModel:
    """The trained digits MLP for ``seed``: from memory, else from the disk cache, else trained
    (a few seconds, reported to ``progress``). One training at a time."""
    store = _digits_store()
    hit = store.get(seed)
    if hit is None:
        with _DIGITS_LOCK:
            hit = store.get(seed)
            if hit is None:
                hit = load_or_train_digits_model(seed=seed, progress=progress)
                store.put(seed, hit)
    return hit


def session_uploads(state=None) -> dict[str, UploadedTensors]:
    """This session's parsed uploads (weight and inputs), keyed by digest."""
    state = st.session_state if state is None else state
    found = (state.get(S.UPLOAD_WEIGHT), state.get(S.UPLOAD_INPUTS))
    return {upload.digest: upload for upload in found if upload is not None}


@st.cache_resource(max_entries=1, show_spinner=False)
def _whole_model_store() -> BoundedLRU:
    return BoundedLRU(WHOLE_MODEL_ENTRIES)


def whole_model_key(configs: Mapping[str, QuantConfig | None], seed: int,
                    sensitivity: bool) -> tuple:
    return "whole model", config_key(configs), seed, sensitivity


def lookup_whole_model(configs: Mapping[str, QuantConfig | None], seed: int,
                       sensitivity: bool = True) -> WholeModelSummary | None:
    """The cached whole-model summary, or None when it must be computed."""
    return _whole_model_store().get(whole_model_key(configs, seed, sensitivity))


def whole_model(configs: Mapping[str, QuantConfig | None], seed: int, sensitivity: bool = True,
                progress: ProgressCallback | None = None) -> WholeModelSummary:
    """Every Linear of the digits MLP (``seed``) quantized with ``configs`` (cached by the
    configs' values, the seed and whether the per-layer sensitivity is included)."""
    return _whole_model_store().get_or_put(
        whole_model_key(configs, seed, sensitivity),
        lambda: run_whole_model(digits_model(seed), configs, sensitivity, progress))


# --- teaching / sharing --------------------------------------------------------------------

ANALYSIS_ENTRIES = 2  # each holds a calibrated layer (weight, codes, dequantized weight)


@st.cache_resource(max_entries=1, show_spinner=False)
def _analysis_store() -> BoundedLRU:
    return BoundedLRU(ANALYSIS_ENTRIES)


def cached_analysis(configs: Mapping[str, QuantConfig | None],
                    settings: DataSettings) -> LayerAnalysis:
    """The Teach tab's `LayerAnalysis` (a calibrated layer and what each quantizer saw) for
    ``configs`` on ``settings``' data, keyed like `cached_result`."""
    return _analysis_store().get_or_put(
        result_key(configs, settings),
        lambda: analyse_layer(cached_layer(configs, settings), sample_data(settings)))
# --- end teaching / sharing ----------------------------------------------------------------


# --- compare view ---------------------------------------------------------------------------
# One entry per config (not per set of configs), so editing one config of a comparison reruns
# only that one; identical configs share an entry. Keys are the configs' field values (comment
# and whitespace edits hit), the data settings and, for sweeps, the swept widths. Runs, sweeps
# and clip views are small; the calibrated layers (kept so a sweep need not recalibrate) hold
# their observers' calibration data, so at most `MAX_CONFIGS` of them are kept.

COMPARE_RUN_ENTRIES = 16
COMPARE_VIEW_ENTRIES = 16


@st.cache_resource(max_entries=1, show_spinner=False)
def _compare_store() -> BoundedLRU:
    return BoundedLRU(2 * COMPARE_RUN_ENTRIES)  # runs and sweeps


@st.cache_resource(max_entries=1, show_spinner=False)
def _compare_layers() -> BoundedLRU:
    return BoundedLRU(MAX_CONFIGS)


@st.cache_resource(max_entries=1, show_spinner=False)
def _compare_view_store() -> BoundedLRU:
    return BoundedLRU(COMPARE_VIEW_ENTRIES)


def compare_key(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                *extra) -> tuple:
    return ("compare", config_key(configs), settings, upload_scope(settings), *extra)


def lookup_compare(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                   bits: tuple[int, ...] | None = None) -> ConfigRun | Sweep | None:
    """The cached run (``bits`` None) or sweep over ``bits``, or None when it must be
    computed."""
    extra = () if bits is None else ("sweep", tuple(bits))
    return _compare_store().get(compare_key(configs, settings, *extra))


def compare_run(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                progress: ProgressCallback | None = None) -> ConfigRun:
    """One config of the compare view calibrated on ``settings``' data and evaluated
    (`compare.calibrate_config`), cached; its calibrated layer is kept for `compare_sweep`."""
    key = compare_key(configs, settings)

    def calibrate() -> ConfigRun:
        layer, run = calibrate_config(configs, sample_data(settings), progress)
        _compare_layers().put(key, layer)
        return run

    return _compare_store().get_or_put(key, calibrate)


def compare_sweep(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                  bits: tuple[int, ...], progress: ProgressCallback | None = None) -> Sweep:
    """The bit-width sweep of one config (`compare.sweep_layer`) from its calibrated layer,
    cached; the layer is recalibrated once only if it has left the layer cache."""
    run_key = compare_key(configs, settings)

    def sweep() -> Sweep:
        data = sample_data(settings)
        layer = _compare_layers().get_or_put(run_key, lambda: calibrate_config(configs, data)[0])
        return sweep_layer(layer, data.eval_batch, bits, progress)

    return _compare_store().get_or_put((*run_key, "sweep", tuple(bits)), sweep)


@st.cache_resource(max_entries=SAMPLE_DATA_ENTRIES, show_spinner=False)
def _calibration_outputs(settings: DataSettings, held: tuple[str, ...], _data: SampleData):
    return calibration_outputs(_data)


def compare_clip_view(tensor: str, runs: Mapping[str, ConfigRun], settings: DataSettings,
                      channel: int | None, scope: str) -> ClipView:
    """`compare_clip.clip_view` of the weight or the calibration outputs for ``runs`` (name ->
    `ConfigRun`), keyed by the names, the configs' values, the data settings and the channel."""
    key = ("clip view", tensor, settings, upload_scope(settings), channel,
           tuple((name, config_key(run.configs)) for name, run in runs.items()))

    def view() -> ClipView:
        data = sample_data(settings)
        if tensor == "weight":
            values, axis = data.weight, 0
        else:
            values, axis = _calibration_outputs(settings, upload_scope(settings), data), -1
        return clip_view(values, {name: run.tensors[tensor] for name, run in runs.items()},
                         axis, channel, scope)

    return _compare_view_store().get_or_put(key, view)
# --- end compare view -----------------------------------------------------------------------
