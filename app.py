"""Quantization explorer: edit weight/output quantization configs and see what they do.

Run with ``streamlit run app.py``. The page reads top to bottom like the code below:
sidebar (presets, sample data) -> YAML editors -> compute (cached) -> panels.
"""

import streamlit as st

from explorer import compare_panel, model_panel, panels, share_panel, teach_panel
from explorer import state as S

st.set_page_config(page_title="Quantization Explorer", page_icon="🔢", layout="wide")
S.init_state(st.session_state)
share_panel.load_link_once(st.session_state)  # a ?s= link, before any widget

settings = panels.render_sidebar(st.session_state)
st.title("Quantization Explorer")
st.caption("Edit the YAML or the widgets; every valid edit rebuilds the QuantLinear, "
           "recalibrates it on the sample data and redraws.")
share_panel.render_link_notice(st.session_state)

# Lazy tabs (on_change="rerun"): a tab can skip its work while closed (`tab.open`).
(single_layer_tab, whole_model_tab, compare_tab, teach_tab) = st.tabs(
    ["Single layer", "Whole model", "Compare", "Teach"], key=S.TABS, on_change="rerun")
with single_layer_tab:
    configs, has_errors = panels.render_editors(st.session_state)
    computed, stale = S.keep_last_good(
        st.session_state, S.LAST_GOOD,
        None if configs is None else panels.compute_results(configs, settings))
    panels.render_results(computed, stale, has_errors)
with whole_model_tab:
    if whole_model_tab.open:  # quantizes the whole digits MLP only while this tab is open
        model_panel.render_whole_model(st.session_state, configs, has_errors)
with compare_tab:
    if compare_tab.open:  # calibrates 2-4 configs and sweeps their bit widths while open
        compare_panel.render_compare(st.session_state, settings)
with teach_tab:
    if teach_tab.open:  # explains the current config with its own numbers
        teach_panel.render_teach(st.session_state, configs, settings)
# Sidebar, last: the link and downloads describe the results on screen (never stale ones).
share_panel.render_share_export(st.session_state, configs, settings,
                                None if stale else computed)
