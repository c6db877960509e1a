"""Shared Streamlit pieces: a long computation under a progress bar (failures become friendly
errors), the stale-results banner, and the live chart (`live_chart`)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st
import streamlit.components.v1 as components_v1

from explorer.core.live_chart import COMPONENT, JS, assets_dir, figure_json
from explorer.core.plotly_bundle import CARTESIAN_TRACES

logger = logging.getLogger("explorer")

# A bar that flashes for a 50 ms edit costs the browser more than it tells the user: show it
# only for work that has already taken this long.
SHOW_AFTER_S = 0.25


def run_with_progress(text: str, compute: Callable, what: str, failed: str,
                      rejected: Callable[[Exception], str] | None = None):
    """``compute(progress)`` under a progress bar (``text`` until the first status), shown once
    the work has taken `SHOW_AFTER_S` and removed afterwards. A ValueError/RuntimeError
    shows ``rejected(err)`` when given (bad input, logged as a warning); any other failure
    is logged with its traceback and shows ``failed``, never the traceback. Returns None
    after a failure."""
    slot = st.empty()  # the bar appears only once the work has taken SHOW_AFTER_S
    started = time.perf_counter()

    def report(fraction: float, status: str) -> None:
        if time.perf_counter() - started >= SHOW_AFTER_S:
            slot.progress(min(max(fraction, 0.0), 1.0), text=status or text)

    try:
        return compute(report)
    except Exception as err:  # noqa: BLE001 - the page must never show a traceback
        if rejected is not None and isinstance(err, (ValueError, RuntimeError)):
            logger.warning("%s rejected the input: %s", what, err)
            st.error(rejected(err), icon="🚫")
        else:
            logger.exception("%s failed", what)
            st.error(failed, icon="🚫")
        return None
    finally:
        slot.empty()


def render_stale_banner(has_errors: bool, errors_at: str, shown: str) -> None:
    """The banner over results kept from the last valid config: why they are stale (the
    config's errors, shown at ``errors_at``, or settings that could not run) and ``shown``."""
    reason = (f"the current config has errors ({errors_at})" if has_errors
              else "the current settings could not be run")
    st.warning(f"**Stale results:** {reason}. {shown}", icon="⏸️")


def live_chart(figure: go.Figure, *, key: str, config: dict) -> None:
    """Draw ``figure`` under ``key``; later runs with the same key update it in place
    (`explorer.core.live_chart`). A figure with a trace outside the cartesian bundle goes to
    `st.plotly_chart` instead."""
    if not {trace.type for trace in figure.data} <= CARTESIAN_TRACES:
        st.plotly_chart(figure, key=key, config=config, width="stretch")
        return
    _live_chart_component()(key=key, data={"figure": figure_json(figure),
                                           "config": {**config, "responsive": True}})


@functools.cache
def _live_chart_component():
    # A v1 declaration only to serve plotly.js at /component/<name>/ (nothing mounts it).
    assets = components_v1.declare_component("plotly_js", path=str(assets_dir()))
    return st.components.v2.component(COMPONENT, js=JS % {"assets": assets.name},
                                      isolate_styles=False)
