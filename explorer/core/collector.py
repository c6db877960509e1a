"""The app process's garbage collector: what the imports create is frozen, once."""

from __future__ import annotations

import functools
import gc


@functools.cache
def freeze_imports() -> int:
    """Exempt every object alive now from the collector's full passes (`gc.freeze`), once per
    process, and return how many that is. The app's imports (torch, plotly, streamlit, about
    260k objects) made each full pass take ~200 ms, and one could land in the middle of an
    edit. Objects created later are collected as usual."""
    gc.freeze()
    return gc.get_freeze_count()
