"""Run a long computation under a Streamlit progress bar; failures become friendly errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

logger = logging.getLogger("explorer")


def run_with_progress(text: str, compute: Callable, what: str, failed: str,
                      rejected: Callable[[Exception], str] | None = None):
    """``compute(progress)`` under a progress bar starting at ``text``; the bar is removed
    afterwards. A ValueError/RuntimeError shows ``rejected(err)`` when given (bad input, logged
    as a warning); any other failure is logged with its traceback and shows ``failed``, never
    the traceback. Returns None after a failure."""
    bar = st.progress(0.0, text=text)
    try:
        return compute(lambda f, status: bar.progress(min(max(f, 0.0), 1.0), text=status))
    except Exception as err:  # noqa: BLE001 - the page must never show a traceback
        if rejected is not None and isinstance(err, (ValueError, RuntimeError)):
            logger.warning("%s rejected the input: %s", what, err)
            st.error(rejected(err), icon="🚫")
        else:
            logger.exception("%s failed", what)
            st.error(failed, icon="🚫")
        return None
    finally:
        bar.empty()
