"""Session keys of the Whole model tab (no Streamlit)."""

from __future__ import annotations

from explorer.core.state import State

MODEL_LAST_GOOD = "model.last_good"          # last valid WholeModelSummary (shown stale)
MODEL_COMPARE = "model.compare_presets"      # presets compared in "Whole model" (kept value)
MODEL_COMPARE_WIDGET = "model.compare_presets.widget"  # its multiselect (dropped when closed)


def init_model_state(state: State) -> None:
    """Set the missing whole-model keys to their defaults."""
    state.setdefault(MODEL_LAST_GOOD, None)
    state.setdefault(MODEL_COMPARE, [])
