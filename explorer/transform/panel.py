"""The transform panel (Single layer tab, below the results): edit the ``transform:`` section
(SmoothQuant, Hadamard rotation, AWQ, GPTQ) and see what it does to this layer.

Shows the difficulty-migration picture (per-channel max |x| and max |W| before/after), the
SmoothQuant output-QSNR-vs-alpha curve and before/after metrics (the pipeline's results
without and with the transform). GPTQ runs on a button, under a progress bar; the Cancel
button stops it (a click reruns the script, which Streamlit interrupts at the next progress
update). The switch puts the section in the document: the results above, Whole model, Teach,
downloads and share links then use it.
"""

from __future__ import annotations

import streamlit as st

from explorer.core import state as S
from explorer.core.formatting import CHART_CONFIG, format_config_error
from explorer.core.panel import run_with_progress
from explorer.core.pipeline import DataSettings
from explorer.data import state as DS
from explorer.data.cache import sample_data
from explorer.single import results
from explorer.transform import analysis as A
from explorer.transform import figures as F
from explorer.transform import state as T
from explorer.transform.state import with_document_transform  # noqa: F401 - app.py uses it

ROTATIONS = ("none", "hadamard")
ALGORITHMS = ("rtn", "awq", "gptq")


def render_transform(state, configs: dict | None, settings: DataSettings) -> None:
    """The panel, in an expander (the first screen stays compact)."""
    panel = st.expander("Outlier mitigation: SmoothQuant, Hadamard rotation, AWQ, GPTQ "
                        "(`transform:`)", key=T.OPEN, on_change="rerun")
    with panel:
        if not panel.open:  # lazy: nothing is computed or drawn while it is closed
            return
        T.sync_from_store(state)
        T.ensure_widgets(state)
        st.toggle("Apply this transform to the layer (results above, Whole model, Teach, "
                  "downloads and links)", key=S.TRANSFORM_ENABLED,
                  help="On: the transform: section is part of the config document. Off: "
                       "this panel only previews it.")
        _render_editor(state)
        config, error = T.current(state)
        if error is not None:
            st.error(f"Transform config error — {format_config_error(error)}", icon="🚫")
            return
        if configs is None:
            st.info("Fix the config errors above to preview the transform.")
            return
        base = {k: v for k, v in configs.items() if k != "transform"}
        uploads = DS.session_uploads(state)
        try:
            data = sample_data(settings, uploads)
            _render_pictures(data, base, config)
        except ValueError as err:  # e.g. no Hadamard matrix of this size, a refused format
            st.warning(f"This transform cannot run on this layer: {err}", icon="⚠️")
            return
        _render_metrics(state, base, config, settings, uploads)


def _render_editor(state) -> None:
    text_col, widget_col = st.columns([2, 3])
    with text_col:
        st.text_area("transform YAML", key=T.TEXT, height=150, on_change=T.on_text_change,
                     args=(state,), help="The body of the transform: section (no header).")
    with widget_col:
        left, right = st.columns(2)
        args = {"on_change": T.on_widget_change, "args": (state,)}
        left.toggle("SmoothQuant", key=T.SQ_ON, **args,
                    help="s_j = max|X_j|^a / max|W_j|^(1-a); x/s and W*s (exact in fp32)")
        left.slider("alpha (migration strength)", 0.0, 1.0, step=0.05, key=T.ALPHA,
                    disabled=not state.get(T.SQ_ON), **args)
        left.selectbox("Rotation", ROTATIONS, key=T.ROTATION, **args,
                       help="hadamard: a randomized Hadamard rotation Q (x Q, W Q)")
        right.selectbox("Weight algorithm", ALGORITHMS, key=T.ALGORITHM, **args,
                        help="rtn: round to nearest; awq: searched per-channel scales; "
                             "gptq: second-order error feedback")
        gptq = state.get(T.ALGORITHM) != "gptq"
        right.number_input("GPTQ damp", 0.0001, 1.0, step=0.005, format="%.4f", key=T.DAMP,
                           disabled=gptq, help="Fraction of mean(diag H) added to the "
                           "Hessian's diagonal (stability).", **args)
        right.number_input("GPTQ block", 1, 4096, step=32, key=T.BLOCK, disabled=gptq,
                           help="Lazy-update width: speed only, same result.", **args)
        right.checkbox("GPTQ act_order", key=T.ACT_ORDER, disabled=gptq,
                       help="Quantize columns by descending Hessian diagonal.", **args)


def _render_pictures(data, base: dict, config) -> None:
    left, right = st.columns([3, 2])
    result = A.preview(data, base, config)
    left.plotly_chart(F.make_migration_figure(A.migration_of(data, result),
                                              "Difficulty migration: ranges before/after"),
                      config=CHART_CONFIG, key="transform.migration")
    alphas, qsnr = A.alpha_curve(data, base)
    act = base.get("activation")
    act_name = "int8 per tensor (assumed)" if act is None else act.bit_type.name
    chosen = None if config.smoothquant is None else config.smoothquant.alpha
    right.plotly_chart(F.make_alpha_curve_figure(
        alphas, qsnr, chosen, f"SmoothQuant: output QSNR vs alpha<br><sup>inputs {act_name}</sup>"),
        config=CHART_CONFIG, key="transform.alpha_curve")


def _render_metrics(state, base: dict, config, settings, uploads) -> None:
    after_configs = {**base, "transform": config}
    after = results.lookup_result(after_configs, settings, uploads)
    if after is None and config.weight_algorithm == "gptq":
        run_col, cancel_col, _ = st.columns([1, 1, 3])
        clicked = run_col.button("Run GPTQ", key=T.RUN_GPTQ, type="primary")
        cancel_col.button("Cancel", key=T.CANCEL,
                          help="Stops a running GPTQ (the page reruns without it).")
        if not clicked:
            st.caption("GPTQ runs on demand: press Run GPTQ for the before/after metrics.")
            return
    if after is None:
        after = run_with_progress(
            "Transforming and calibrating", lambda progress: results.cached_result(
                after_configs, settings, uploads, progress),
            "transform preview", "The transform failed; see the server log.",
            rejected=lambda err: f"The transform cannot run: {err}")
        if after is None:
            return
    before = results.cached_result(base, settings, uploads)
    rows = A.metric_rows(before[0], after[0])
    columns = st.columns(max(len(rows), 1))
    for column, row in zip(columns, rows):
        better = "normal" if "QSNR" in row["metric"] else "inverse"
        column.metric(row["metric"], f"{row['after']:.4g}", f"{row['change']:+.3g}",
                      delta_color=better, help=f"before (no transform): {row['before']:.4g}")
    st.caption("Before: the configs above without the transform; after: with it. The output "
               "is compared with the original layer's fp32 output; the weight with W'' (the "
               "transformed weight).")
