"""Session keys of the Whole model tab (no Streamlit)."""

from __future__ import annotations

from explorer.core.state import State

MODEL_LAST_GOOD = "model.last_good"          # last valid WholeModelSummary (shown stale)
MODEL_COMPARE = "model.compare_presets"      # presets compared in "Whole model" (kept value)
MODEL_COMPARE_WIDGET = "model.compare_presets.widget"  # its multiselect (dropped when closed)
MODEL_PICK = "model.pick"                    # radio: "digits", "minilm" or "custom"
ENCODER_LAST_GOOD = "model.encoder_last_good"  # last valid EncoderSummary (shown stale)
ENCODER_SENSITIVITY = "model.encoder_sensitivity"  # toggle: the 36 one-layer runs
OUTLIER_LAYER = "model.outlier_layer"        # selectbox: the outlier view's layer


def init_model_state(state: State) -> None:
    """Set the missing whole-model keys to their defaults."""
    state.setdefault(MODEL_LAST_GOOD, None)
    state.setdefault(MODEL_COMPARE, [])
    state.setdefault(MODEL_PICK, "digits")
    state.setdefault(ENCODER_LAST_GOOD, None)
