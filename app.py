"""Quantization explorer: edit weight/output quantization configs and see what they do.

Run with ``streamlit run app.py``. The page reads top to bottom like the code below:
sidebar (presets, sample data) -> YAML editors -> compute (cached) -> panels.
"""

import os
import sys

# Before torch loads (the first import below): OpenMP threads sleep between parallel regions
# instead of spinning. On a machine whose cores the browser shares, spinning threads waiting
# for a descheduled peer made a weight edit's compute 2-4x slower (110-290 ms vs 50-90 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from explorer.compare import panel as compare_panel
from explorer.core import state as S
from explorer.core.collector import freeze_imports
from explorer.core.compute_threads import threads_for, work_elements
from explorer.data.encoders import configure_from_argv
from explorer.data.state import init_data_state
from explorer.model import panel as model_panel
from explorer.model.state import init_model_state
from explorer.share import panel as share_panel
from explorer.share.state import init_share_state
from explorer.single import panel as single_panel
from explorer.single.state import init_single_state
from explorer.teach import panel as teach_panel
from explorer.teach.state import init_teach_state
from explorer.transform import panel as transform_panel
from explorer.transform.state import init_transform_state

PAGE_STYLE = ("<style>"
              '[data-testid="stMainBlockContainer"] {padding-top: 1.5rem;}'
              # a compact title: the editors and the first plots fit above the fold
              '[data-testid="stMainBlockContainer"] h1 {font-size: 2rem; padding: 0;}'
              # five metric cards in a row must fit "6.672e-09" down to a 1024 px window
              '[data-testid="stMetricValue"] {font-size: 1.4rem;}'
              # narrow windows: each editor's YAML above its widgets, which keep their row
              "@media (max-width: 1279px) {"
              '[class*="st-key-editor-"] [data-testid="stHorizontalBlock"] {flex-wrap: wrap;}'
              '[class*="st-key-editor-"] [data-testid="stColumn"] {min-width: 100%;}'
              '[class*="st-key-fields-"] [data-testid="stColumn"] {min-width: 0;}}'
              "</style>")


@st.fragment
def single_layer(settings):
    """The Single layer tab and the sidebar's share section. An edit in here reruns only this
    function (a fragment): the sidebar's widgets and the closed tabs are not sent again."""
    with threads_for(work_elements(settings)):  # one torch thread for small layers
        configs, has_errors = single_panel.render_editors(st.session_state)
        # the document's transform: section (SmoothQuant, rotation, AWQ, GPTQ), when switched on
        configs = transform_panel.with_document_transform(st.session_state, configs)
        computed, stale = S.keep_last_good(
            st.session_state, S.LAST_GOOD,
            None if configs is None else single_panel.compute_results(configs, settings))
        single_panel.render_results(computed, stale, has_errors)
        transform_panel.render_transform(st.session_state, configs, settings)  # below results
        # The sidebar's link and downloads describe the results on screen (never stale ones).
        share_panel.render_share_export(st.session_state, configs, settings,
                                        None if stale else computed)
    return configs, has_errors


freeze_imports()  # once: a full garbage collection would rescan every imported object
configure_from_argv(sys.argv[1:])  # `-- --model-dir DIR`: your checkpoint (server-side only)
st.set_page_config(page_title="Quantization Explorer", page_icon="🔢", layout="wide")
for init in (S.init_state, init_data_state, init_single_state, init_model_state,
             init_teach_state, init_share_state, init_transform_state):
    init(st.session_state)  # each feature's keys and defaults
share_panel.load_link_once(st.session_state)  # a ?s= link, before any widget

settings = single_panel.render_sidebar(st.session_state)
# static stylesheets: tighter top margin, and the metric cards'
st.markdown(PAGE_STYLE + single_panel.RESULTS_STYLE, unsafe_allow_html=True)
st.title("Quantization Explorer", anchor=False,
         help="Edit the YAML or the widgets; every valid edit rebuilds the QuantLinear, "
              "recalibrates it on the sample data and redraws.")
share_panel.render_link_notice(st.session_state)

# Lazy tabs (on_change="rerun"): a tab can skip its work while closed (`tab.open`).
(single_layer_tab, whole_model_tab, compare_tab, teach_tab) = st.tabs(
    ["Single layer", "Whole model", "Compare", "Teach"], key=S.TABS, on_change="rerun")
with single_layer_tab:
    single_panel.render_start_here(st.session_state)  # static: outside the fragment
    configs, has_errors = single_layer(settings)
with whole_model_tab:
    if whole_model_tab.open:  # quantizes the whole digits MLP only while this tab is open
        model_panel.render_whole_model(st.session_state, configs, has_errors)
with compare_tab:
    if compare_tab.open:  # calibrates 2-4 configs and sweeps their bit widths while open
        compare_panel.render_compare(st.session_state, settings)
with teach_tab:
    if teach_tab.open:  # explains the current config with its own numbers
        teach_panel.render_teach(st.session_state, configs, settings)
