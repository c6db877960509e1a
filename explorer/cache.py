"""Every cache of the explorer, in one module; each is bounded.

- `sample_data(settings)`: seeded tensors, keyed by the (frozen, hashable) `DataSettings`.
- `cached_result(configs, settings, progress)`: the `PipelineResult` and its figures, keyed by
  the configs' field values (so comment or whitespace edits hit the cache) and the data
  settings. Tensors are never hashed.

The result cache is a small LRU held by ``st.cache_resource`` rather than an
``@st.cache_data`` function, because the pipeline reports progress to a progress bar drawn
outside it, and Streamlit would try to replay that element on a cache hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping

import plotly.graph_objects as go
import streamlit as st

from explorer.pipeline import (
    DataSettings,
    PipelineResult,
    ProgressCallback,
    SampleData,
    build_figures,
    config_key,
    make_sample_data,
    run_pipeline,
)
from quantlib.quant_config import QuantConfig

SAMPLE_DATA_ENTRIES = 4
RESULT_ENTRIES = 16

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

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource(max_entries=SAMPLE_DATA_ENTRIES, show_spinner=False)
def sample_data(settings: DataSettings) -> SampleData:
    """Seeded sample tensors for ``settings`` (shared, never mutated)."""
    return make_sample_data(settings)


@st.cache_resource(max_entries=1, show_spinner=False)
def _result_store() -> BoundedLRU:
    return BoundedLRU(RESULT_ENTRIES)


def result_key(configs: Mapping[str, QuantConfig | None], settings: DataSettings) -> tuple:
    return config_key(configs), settings


def lookup_result(configs: Mapping[str, QuantConfig | None],
                  settings: DataSettings) -> Computed | None:
    """The cached result and figures, or None when they must be computed."""
    return _result_store().get(result_key(configs, settings))


def cached_result(configs: Mapping[str, QuantConfig | None], settings: DataSettings,
                  progress: ProgressCallback | None = None) -> Computed:
    """Run the pipeline (or reuse its cached run) and build the figures."""
    key = result_key(configs, settings)
    store = _result_store()
    hit = store.get(key)
    if hit is not None:
        return hit
    result = run_pipeline(configs, settings, progress, data=sample_data(settings))
    computed = (result, build_figures(result))
    store.put(key, computed)
    return computed


def clear_all() -> None:
    """Empty every cache (tests call this between cases)."""
    st.cache_data.clear()
    st.cache_resource.clear()
