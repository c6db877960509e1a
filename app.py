"""Quantization explorer: edit weight/output quantization configs and see what they do.

Run with ``streamlit run app.py``. The page reads top to bottom like the code below:
sidebar (presets, sample data) -> YAML editors -> compute (cached) -> panels.
"""

import streamlit as st

from explorer import panels
from explorer import state as S

st.set_page_config(page_title="Quantization Explorer", page_icon="🔢", layout="wide")
S.init_state(st.session_state)

settings = panels.render_sidebar(st.session_state)
st.title("Quantization Explorer")
st.caption("Edit the YAML or the widgets; every valid edit rebuilds the QuantLinear, "
           "recalibrates it on the sample data and redraws.")

(single_layer_tab,) = st.tabs(["Single layer"])
with single_layer_tab:
    configs, has_errors = panels.render_editors(st.session_state)
    computed = None if configs is None else panels.compute_results(configs, settings)
    stale = computed is None
    if stale:
        computed = st.session_state[S.LAST_GOOD]  # the last valid results, marked stale
    else:
        st.session_state[S.LAST_GOOD] = computed
    panels.render_results(computed, stale, has_errors)
