"""Bounded caches shared by every session of the server process (no Streamlit).

Each cache of the explorer is a `BoundedLRU` made by `store(name, max_entries)`, so one
registry knows them all: `clear_all` empties them (tests call it between cases) and `stores`
lists them (the soak test checks every bound). Keys are config field values and data settings;
a tensor is never hashed. The feature caches live with their features:
`explorer.data.cache` (sample data, the digits MLP), `explorer.single.results` (pipeline
results and calibrated layers), `explorer.compare.cache`, `explorer.model.cache` and
`explorer.teach.analysis.cached_analysis`.

These are plain module-level stores rather than ``st.cache_*`` functions: the pipeline reports
progress to a progress bar drawn outside it, which Streamlit would try to replay on a hit, and
a plain store keeps this layer free of Streamlit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


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

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_STORES: dict[str, BoundedLRU] = {}
_STORES_LOCK = threading.Lock()


def store(name: str, max_entries: int) -> BoundedLRU:
    """The process-wide store called ``name`` (made on first use, at most ``max_entries``)."""
    with _STORES_LOCK:
        found = _STORES.get(name)
        if found is None:
            found = _STORES[name] = BoundedLRU(max_entries)
        return found


def stores() -> dict[str, BoundedLRU]:
    """Every store made so far, by name."""
    with _STORES_LOCK:
        return dict(_STORES)


def clear_all() -> None:
    """Empty every cache (tests call this between cases)."""
    for found in stores().values():
        found.clear()
