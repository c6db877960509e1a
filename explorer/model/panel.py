"""The "Whole model" tab: the current configs applied to every Linear of the digits MLP.

Accuracy cards (fp32 vs quantized), a per-layer table and QSNR bar chart, the one-layer-at-a-time
sensitivity chart, and a side-by-side accuracy comparison of several configs (the Compare tab's
configs and presets from ``configs/``). Numbers come from `explorer.model.summary` through the
cache in `explorer.model.cache` (keyed by config values and seed). Like the single-layer view, an
invalid config keeps the last good result on screen, marked stale; no traceback ever reaches
the page.
"""

from __future__ import annotations

import logging

import streamlit as st

from explorer.compare import state as CS
from explorer.compare.runs import parse_entry
from explorer.core import state as S
from explorer.core.formatting import CHART_CONFIG, delta_style, format_change, format_fixed
from explorer.core.panel import render_stale_banner, run_with_progress
from explorer.data import panel as data_panel
from explorer.model import cache as model_cache
from explorer.model import state as MS
from explorer.model import summary as model_view
from explorer.model.summary import WholeModelSummary, format_accuracy
from quantlib.config_loader import ConfigError, load_config_from_yaml

logger = logging.getLogger("explorer")

CURRENT_LABEL = "current config"
PP_HELP = ("pp = percentage points: the plain difference of two percentages (97.2 % → 95.1 % "
           "is a drop of 2.1 pp).")
# The per-layer table's columns: a short label (so every column fits at 1024 px) and help.
LAYER_COLUMNS = {
    "layer": ("layer", "The Linear layer of the MLP (fc1 first)."),
    "shape (out x in)": ("shape", "Weight shape: output features × input features."),
    "weight QSNR (dB)": ("W QSNR (dB)", "Weight QSNR: 10·log10(signal / error power). "
                         "Higher is better; 8 bits is typically 35-45 dB."),
    "output QSNR (dB)": ("out QSNR (dB)", "This layer's own output error: its quantized "
                         "output against fp32 on the same input. Higher is better."),
    "accumulated output QSNR (dB)": ("accum. QSNR (dB)", "The output against the fp32 "
                                     "model's, so it includes every error upstream."),
    "weight clipped (%)": ("W clip %", "Share of weights clamped beyond the clip range (by "
                           "over half a step). Near 0 is usual."),
    "output clipped (%)": ("out clip %", "Share of outputs clamped beyond the clip range."),
    "input QSNR (dB)": ("in QSNR (dB)", "Input activation QSNR (activation section on)."),
    "input clipped (%)": ("in clip %", "Share of input activations clamped."),
    "accuracy, only this layer quantized (%)": ("alone acc. %", "Top-1 accuracy with only "
                                                "this layer quantized: the layer's "
                                                "sensitivity. Close to fp32 is good."),
}
COMPARE_COLUMNS = {
    "config": ("config", "Where the config comes from: the editors, the Compare tab or a "
               "preset."),
    "fp32 (%)": ("fp32 %", "Top-1 accuracy of the unquantized model (the same for every row)."),
    "quantized (%)": ("quantized %", "Top-1 accuracy with every Linear quantized. Higher "
                      "is better."),
    "drop (pp)": ("drop (pp)", "fp32 minus quantized accuracy. " + PP_HELP),
}


def render_whole_model(state, configs: dict | None, has_errors: bool) -> None:
    """The whole tab. ``configs`` is the editors' ``{'weight', 'output', 'activation'}`` (None
    when a section is invalid); ``has_errors`` says why configs is None."""
    st.subheader("Whole model: every Linear of the digits MLP quantized")
    st.caption("The configs of the editors (Single layer tab) applied to fc1, fc2 and fc3 of a "
               "64 → 256 → 128 → 10 MLP trained on scikit-learn's 8×8 digits. Calibration: "
               "the 1437 training images; accuracy: top-1 on the 360 held-out images. The "
               "sidebar's seed is the model's training seed.")
    seed = int(state[S.data_key("seed")])
    if data_panel.ensure_digits_model(seed) is None:
        return
    summary, stale = S.keep_last_good(
        state, MS.MODEL_LAST_GOOD, None if configs is None else compute_whole_model(configs, seed))
    if summary is None:
        st.info("No whole-model results yet: fix the config to quantize the model.")
        return
    if stale:
        seed_note = "" if summary.seed == seed else f" (seed {summary.seed})"
        render_stale_banner(has_errors, "Single layer tab",
                            f"Shown: the last valid config's results{seed_note}.")
    elif configs is not None:
        st.caption(f"Configs: {model_view.describe_configs(configs)}")
    try:
        render_summary(summary)
        render_comparison(state, seed, None if stale else summary)
    except Exception:  # noqa: BLE001 - the page must never show a traceback
        logger.exception("drawing the whole-model view failed")
        st.error("Some whole-model results could not be drawn; the details are in the server "
                 "log.", icon="🚫")


def compute_whole_model(configs: dict, seed: int, sensitivity: bool = True,
                        label: str = "the digits MLP") -> WholeModelSummary | None:
    """The cached summary, or computed under a progress bar; None (after a friendly error)
    when it fails."""
    hit = model_cache.lookup_whole_model(configs, seed, sensitivity)
    if hit is not None:
        return hit
    return run_with_progress(
        f"Quantizing {label}…",
        lambda progress: model_cache.whole_model(configs, seed, sensitivity, progress=progress),
        "whole-model quantization",
        failed=f"Something went wrong while quantizing {label}; the details are in the "
               "server log.",
        rejected=lambda err: f"Could not quantize {label} with these configs: {err}")


def render_summary(summary: WholeModelSummary) -> None:
    """Accuracy cards, the per-layer table, the QSNR and sensitivity charts."""
    cards = st.columns(3)
    cards[0].metric("fp32 accuracy", format_accuracy(summary.fp32_accuracy),
                    help=f"top-1 on {summary.num_eval_rows} held-out images")
    change = -100 * summary.accuracy_drop
    cards[1].metric("Quantized accuracy", format_accuracy(summary.quantized_accuracy),
                    delta=format_change(change, 1, "pp"), **delta_style(change, 1),
                    help="Every Linear quantized with the current configs; the delta is the "
                         "change from fp32. " + PP_HELP)
    cards[2].metric("Accuracy drop", f"{format_fixed(100 * summary.accuracy_drop, 1)} pp",
                    help="fp32 minus quantized accuracy. Under 1 pp is a good 8-bit result. "
                         + PP_HELP)
    st.dataframe(model_view.layer_table(summary), hide_index=True, key="model.layer_table",
                 column_config=_column_config(LAYER_COLUMNS), width="stretch")
    st.caption("Output QSNR: each layer's own error (its quantized output against fp32 on the "
               "same input); accumulated: against the fp32 model's output of that layer, so it "
               "includes every error upstream. Clipped: values clamped beyond half a step.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(model_view.make_layer_qsnr_figure(summary), key="chart.model_qsnr",
                        config=CHART_CONFIG, width="stretch")
    with right:
        if summary.sensitivity:
            st.plotly_chart(model_view.make_sensitivity_figure(summary),
                            key="chart.model_sensitivity", config=CHART_CONFIG,
                            width="stretch")
    timing = " + ".join(f"{seconds:.2f} s {what}" for what, seconds in summary.seconds.items())
    st.caption(f"Computed in {timing} (cached by config and seed); calibrated on "
               f"{summary.num_calibration_rows} rows.")


def render_comparison(state, seed: int, current: WholeModelSummary | None) -> None:
    """Several configs side by side: the current one, the Compare tab's configs (once that tab
    has been set up) and any presets picked here."""
    st.subheader("Compare configs on the whole model")
    st.caption("The configs of the Compare tab (and any presets picked below), each applied to "
               "every Linear; no sensitivity, so each takes a fraction of a second.")
    rows: list[tuple[str, WholeModelSummary, str]] = []
    if current is not None:
        rows.append((CURRENT_LABEL, current, ""))
    for name, text in state.get(CS.COMPARE_ENTRIES) or ():
        entry = parse_entry(name, text)
        if entry.configs is None:
            st.warning(f"Compare config {name!r} has an error and is skipped: {entry.error}",
                       icon="⚠️")
            continue
        _append_run(rows, f"Compare: {name}", entry.configs, seed)
    presets = S.preset_names()
    if MS.MODEL_COMPARE_WIDGET not in state:  # re-seed: a closed tab's widget state is dropped
        state[MS.MODEL_COMPARE_WIDGET] = [p for p in state.get(MS.MODEL_COMPARE, [])
                                         if p in presets]
    st.multiselect("Presets to compare too (configs/*.yaml)", presets,
                   key=MS.MODEL_COMPARE_WIDGET, on_change=_store_compare, args=(state,),
                   help="Each picked preset is applied to every Linear and added to the "
                        "table and chart below (a fraction of a second each).")
    for name in state[MS.MODEL_COMPARE_WIDGET]:
        try:
            configs = load_config_from_yaml(S.PRESET_DIR / name)
        except (ConfigError, OSError) as err:
            st.error(f"Preset {name}: {err}", icon="🚫")
            continue
        _append_run(rows, f"Preset: {name}", configs, seed)
    if len(rows) < 2:
        st.caption("Set up configs in the Compare tab, or pick presets above, to see their "
                   "whole-model accuracies side by side.")
        return
    st.dataframe([{"config": label, "fp32 (%)": round(100 * s.fp32_accuracy, 1),
                   "quantized (%)": round(100 * s.quantized_accuracy, 1),
                   "drop (pp)": round(100 * s.accuracy_drop, 1) + 0.0}  # no "-0.0"
                  for label, s, _ in rows],
                 hide_index=True, key="model.compare_table",
                 column_config=_column_config(COMPARE_COLUMNS), width="stretch")
    st.markdown("\n".join(f"- **{label}**: {described or 'the editors (Single layer tab)'}"
                          for label, _, described in rows))
    st.plotly_chart(model_view.make_accuracy_comparison_figure([r[:2] for r in rows]),
                    key="chart.model_compare", config=CHART_CONFIG, width="stretch")


def _append_run(rows: list, label: str, configs: dict, seed: int) -> None:
    summary = compute_whole_model(configs, seed, sensitivity=False, label=label)
    if summary is not None:
        rows.append((label, summary, model_view.describe_configs(configs)))


def _column_config(columns: dict) -> dict:
    return {name: st.column_config.Column(label, help=help_text)
            for name, (label, help_text) in columns.items()}


def _store_compare(state) -> None:
    state[MS.MODEL_COMPARE] = list(state[MS.MODEL_COMPARE_WIDGET])
