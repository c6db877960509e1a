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
from explorer.data import cache as data_cache
from explorer.data import encoders
from explorer.data import panel as data_panel
from explorer.model import cache as model_cache
from explorer.model import figures as model_figures
from explorer.model import state as MS
from explorer.model import summary as model_view
from explorer.model.encoder_quant import EncoderSummary
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


MODEL_LABELS = {"digits": "Digits MLP (fast, small)", **encoders.ENCODER_LABELS}


def render_whole_model(state, configs: dict | None, has_errors: bool) -> None:
    """The whole tab: a model picker, then that model's view. ``configs`` is the editors'
    ``{'weight', 'output', 'activation'}`` (None when a section is invalid); ``has_errors``
    says why configs is None."""
    models = ["digits", *(s for s in encoders.ENCODER_SOURCES
                          if encoders.encoder_dir(s) is not None)]
    if state.get(MS.MODEL_PICK) not in models:
        state[MS.MODEL_PICK] = "digits"
    st.radio("Model", models, format_func=MODEL_LABELS.get, key=MS.MODEL_PICK,
             horizontal=True, help="The digits MLP takes a fraction of a second; a sentence "
             "encoder (36 Linears for MiniLM) takes seconds, cached by config.")
    if state[MS.MODEL_PICK] == "digits":
        render_digits_model(state, configs, has_errors)
    else:
        render_encoder_model(state, state[MS.MODEL_PICK], configs, has_errors)


def render_digits_model(state, configs: dict | None, has_errors: bool) -> None:
    """The digits MLP: every Linear quantized, sensitivity and the config comparison."""
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
    return _cached_or_run(
        model_cache.lookup_whole_model(configs, seed, sensitivity), f"Quantizing {label}…",
        lambda progress: model_cache.whole_model(configs, seed, sensitivity, progress=progress),
        "whole-model quantization", label)


def _cached_or_run(hit, message: str, compute, what: str, label: str):
    """``hit`` when cached, else ``compute(progress)`` under a progress bar; None (after a
    friendly error) when it fails."""
    if hit is not None:
        return hit
    return run_with_progress(
        message, compute, what,
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


# --- sentence encoders -------------------------------------------------------------------------


def render_encoder_model(state, source: str, configs: dict | None, has_errors: bool) -> None:
    """A sentence encoder: task metrics, per-layer table and sensitivity, the config
    comparison and the outlier view."""
    label = MODEL_LABELS[source]
    st.subheader(f"Whole model: every Linear of {label} quantized")
    st.caption("The editors' configs applied to every nn.Linear (MiniLM: 36; the pooler is not "
               "used by mean pooling and stays out). Calibration: the corpus's calibration "
               "sentences (no padding tokens reach an observer); metrics on the evaluation "
               "sentences: mean cosine of quantized vs fp32 sentence embeddings (mean pooling, "
               "L2-normalised) and paraphrase retrieval (is each sentence's paraphrase its "
               "nearest neighbour among all evaluation sentences).")
    sensitivity = st.toggle("Per-layer sensitivity (one run per layer, slower)",
                            key=MS.ENCODER_SENSITIVITY,
                            help="Quantize one Linear at a time (the rest fp32) and measure the "
                                 "mean cosine and retrieval: one evaluation pass per layer.")
    fresh = None if configs is None else compute_encoder(source, configs, sensitivity, label)
    summary, stale = S.keep_last_good(state, MS.ENCODER_LAST_GOOD, fresh)
    if summary is not None and summary.model != label:
        summary = None
    if summary is None:
        st.info("No results for this model yet: fix the config to quantize it.")
    else:
        if stale:
            render_stale_banner(has_errors, "Single layer tab",
                                "Shown: the last valid config's results.")
        try:
            render_encoder_summary(summary)
            render_encoder_comparison(state, source, label, None if stale else summary)
        except Exception:  # noqa: BLE001 - the page must never show a traceback
            logger.exception("drawing the encoder view failed")
            st.error("Some results could not be drawn; the details are in the server log.",
                     icon="🚫")
    render_outliers(state, source)


def compute_encoder(source: str, configs: dict, sensitivity: bool, label: str,
                    shown: str | None = None) -> EncoderSummary | None:
    """The cached encoder summary, or computed under a progress bar (None after an error)."""
    shown = shown or label
    return _cached_or_run(
        model_cache.lookup_encoder_summary(source, configs, sensitivity),
        f"Quantizing {shown} (the first use loads the model, a few seconds)…",
        lambda progress: model_cache.encoder_summary(source, configs, sensitivity, progress),
        "encoder quantization", shown)


def render_encoder_summary(summary: EncoderSummary) -> None:
    """Metric cards, the per-layer table and the sensitivity chart."""
    cards = st.columns(3)
    cards[0].metric("Mean cosine vs fp32", f"{summary.mean_cosine:.4f}",
                    help=f"Quantized vs fp32 embeddings of {summary.num_eval_sentences} "
                         f"evaluation sentences (lowest: {summary.min_cosine:.4f}). 1 = same.")
    change = 100 * (summary.retrieval - summary.fp32_retrieval)
    cards[1].metric("Paraphrase retrieval", format_accuracy(summary.retrieval),
                    delta=format_change(change, 1, "pp"), **delta_style(change, 1),
                    help=f"{2 * summary.num_eval_pairs} sentences of {summary.num_eval_pairs} "
                         "pairs: is the paraphrase the nearest evaluation sentence? The delta "
                         "is the change from fp32. " + PP_HELP)
    cards[2].metric("fp32 retrieval", format_accuracy(summary.fp32_retrieval))
    rows = [{"layer": r["name"], "shape": r["shape"],
             "weight QSNR (dB)": round(r["weight_qsnr"], 2),
             "weight clipped (%)": round(100 * r["weight_clip_fraction"], 2),
             **({"cosine, only this layer": round(summary.sensitivity[r["name"]][0], 5),
                 "retrieval, only this layer (%)":
                     round(100 * summary.sensitivity[r["name"]][1], 1)}
                if summary.sensitivity else {})} for r in summary.layers]
    st.dataframe(rows, hide_index=True, key="model.encoder_table", width="stretch")
    if summary.sensitivity:
        st.plotly_chart(model_figures.make_encoder_sensitivity_figure(
            summary.sensitivity, summary.mean_cosine), key="chart.encoder_sensitivity",
            config=CHART_CONFIG, width="stretch")
    timing = " + ".join(f"{seconds:.1f} s {what}" for what, seconds in summary.seconds.items())
    st.caption(f"Computed in {timing} (cached by config); calibrated on "
               f"{summary.num_calibration_sentences} sentences "
               f"({summary.num_calibration_tokens} tokens).")


def render_encoder_comparison(state, source: str, label: str,
                              current: EncoderSummary | None) -> None:
    """The Compare tab's configs (and presets picked in the digits view) side by side."""
    st.subheader("Compare configs on this model")
    rows: list[tuple[str, EncoderSummary]] = []
    if current is not None:
        rows.append((CURRENT_LABEL, current))
    named = [(f"Compare: {name}", parse_entry(name, text))
             for name, text in state.get(CS.COMPARE_ENTRIES) or ()]
    for preset in state.get(MS.MODEL_COMPARE, []):
        try:
            named.append((f"Preset: {preset}", load_config_from_yaml(S.PRESET_DIR / preset)))
        except (ConfigError, OSError) as err:
            st.error(f"Preset {preset}: {err}", icon="🚫")
    for shown, entry in named:
        configs = getattr(entry, "configs", entry)
        if configs is None:
            st.warning(f"{shown} has an error and is skipped: {entry.error}", icon="⚠️")
            continue
        summary = compute_encoder(source, configs, False, label, shown)
        if summary is not None:
            rows.append((shown, summary))
    if len(rows) < 2:
        st.caption("Set up configs in the Compare tab (or pick presets in the digits MLP "
                   "view) to see them side by side on this model.")
        return
    st.dataframe([{"config": shown, "mean cosine": round(s.mean_cosine, 5),
                   "retrieval (%)": round(100 * s.retrieval, 1),
                   "fp32 retrieval (%)": round(100 * s.fp32_retrieval, 1)}
                  for shown, s in rows], hide_index=True, key="model.encoder_compare_table",
                 width="stretch")
    st.plotly_chart(model_figures.make_encoder_comparison_figure(
        [(shown, s.mean_cosine, s.retrieval, s.fp32_retrieval) for shown, s in rows]),
        key="chart.encoder_compare", config=CHART_CONFIG, width="stretch")


def render_outliers(state, source: str) -> None:
    """Outlier channels: the chosen layer's input channels by absmax and kurtosis, and the
    top ones tracked through the same layer of every block."""
    st.subheader("Outlier channels")
    stats = run_with_progress(
        "Measuring every layer's input channels…",
        lambda progress: data_cache.encoder_stats(source, progress), "channel statistics",
        failed="The channel statistics could not be computed; the details are in the server "
               "log.")
    if not stats:
        return
    names = list(stats)
    if state.get(MS.OUTLIER_LAYER) not in stats:
        residual = [n for n in names if n.endswith("output.LayerNorm")]
        state[MS.OUTLIER_LAYER] = residual[0] if residual else names[0]
    layer = st.selectbox("Layer input", names, key=MS.OUTLIER_LAYER,
                         help="Any Linear's input, or a LayerNorm's input: the residual stream "
                              "(before the LayerNorm), where the largest outliers live.")
    chosen = stats[layer]
    top = model_figures.top_channels(chosen.absmax)
    st.caption("Top channels: " + ", ".join(
        f"ch {c} (|x| {float(chosen.absmax[c]):.1f}, kurtosis {float(chosen.kurtosis[c]):.0f})"
        for c in top[:5]) + ". Per-tensor int8 spends its whole range on these few channels.")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(model_figures.make_channel_outlier_figure(
            layer, chosen.absmax, chosen.kurtosis, chosen.tokens), key="chart.outliers",
            config=CHART_CONFIG, width="stretch")
    with right:
        tracked = model_figures.same_layer_in_every_block(layer, names)
        st.plotly_chart(model_figures.make_tracked_channels_figure(
            {n: stats[n].absmax for n in tracked}, top[:5]), key="chart.outliers_tracked",
            config=CHART_CONFIG, width="stretch")
