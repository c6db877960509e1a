"""Session keys of the Single layer tab (no Streamlit)."""

from __future__ import annotations

from explorer.core.state import State

RESULT_VIEW = "single.result_view"  # st.tabs: the open result view (lazy: only it is drawn)
START_HIDDEN = "single.start_hidden"  # plain: the "start here" strip was dismissed
CHANNELS_SORTED = "single.channels_sorted"  # toggle: per-channel views worst channel first
ERROR_LOG = "single.error_log"      # toggle: error maps coloured by log10 |error|
PREVIOUS_METRICS = "single.previous_metrics"  # plain: (config key, {card: value}) shown before
CURRENT_METRICS = "single.current_metrics"    # plain: (config key, {card: value}) on screen


def init_single_state(state: State) -> None:
    """Set the missing Single layer keys to their defaults."""
    state.setdefault(START_HIDDEN, False)
    state.setdefault(PREVIOUS_METRICS, None)
    state.setdefault(CURRENT_METRICS, None)
