"""The "Compare" tab: 2–4 named configs of the same layer on the same calibration data.

Reads like the page: buttons -> one YAML editor per config (inline errors) -> calibrate
(cached per config) -> metrics table, config diff, per-channel QSNR, each tensor's histogram
and clip-threshold curve with every config's clip -> the bit-width sweep last (its OMSE/KL
searches are the slow part, so everything else is on screen first). Keys and callbacks are in
`explorer.compare.state`, logic in `explorer.compare.runs`, caches in `explorer.compare.cache`,
figures in `explorer.compare.figures`. A failure never shows a traceback: it is logged and
explained.
"""

from __future__ import annotations

import logging

import pandas as pd
import streamlit as st

from explorer.compare import cache as compare_cache
from explorer.compare import figures as CF
from explorer.compare import runs as C
from explorer.compare import state as CS
from explorer.compare.formats import FORMAT_SET_HELP, FORMAT_SETS, needs_bits_per_element
from explorer.compare.tables import (  # noqa: F401 - best_rows is part of this module's API
    HIGHER_IS_BETTER,
    best_rows,
    format_db,
    lost_table,
    metrics_table,
)
from explorer.core.formatting import CHART_CONFIG, format_config_error
from explorer.core.pipeline import DataSettings
from explorer.data import state as DS

logger = logging.getLogger("explorer")

EDITOR_HEIGHT = 260
BEST_STYLE = "background-color: rgba(44, 160, 44, 0.25); font-weight: bold"
YAML_HELP = ("A whole config document: weight, outputs and an optional activation section. "
             "Press Ctrl+Enter or click outside to apply. kl_bins (KLObserver only) is the "
             "number of histogram bins the KL search uses: 2048 is typical, more is finer "
             "and slower. calibration_mode channel_wise gives each output channel its own "
             "scale; layer_wise one scale for the tensor.")
# Table columns: a short label (every column fits at 1400 px) and help in plain words.
METRIC_COLUMNS = {
    "Weight observer": ("W observer", "How the weight's range was chosen."),
    "Output observer": ("Out observer", "How the output's range was chosen."),
    "Weight QSNR (dB)": ("W QSNR dB", "Weight signal-to-quantization-noise ratio on the "
                         "held-out batch. Higher is better; about 6 dB per bit."),
    "Output QSNR (dB)": ("Out QSNR dB", "Output QSNR on the held-out batch. Higher is "
                         "better."),
    "Weight MSE": ("W MSE", "Mean squared weight error. Lower is better."),
    "Output MSE": ("Out MSE", "Mean squared output error. Lower is better."),
    "Weight clipped (%)": ("W clip %", "Share of weights beyond the clip range by over half "
                           "a step. Near 0 is usual; a little can pay off at low bits."),
    "Output clipped (%)": ("Out clip %", "Share of outputs beyond the clip range."),
    "Observer (ms)": ("Observer ms", "Weight observer + output qparams search time."),
    "Calibration (ms)": ("Calib. ms", "Forward passes feeding the output observer."),
}
LOST_COLUMNS = {
    f"{title} {what}": (f"{short} {label}", text)
    for title, short in (("Weight", "W"), ("Output", "Out"))
    for what, label, text in (
        ("bits", "bits", "The config's own bit width."),
        ("bits/element", "bits/elem", "Storage per value, scales included (MXFP4 4.25, "
         "NVFP4 4.5, INT4 per 128 values 4.25)."),
        ("QSNR (dB)", "QSNR dB", "Measured QSNR at that width. Higher is better."),
        ("ideal (dB)", "ideal dB", "The ideal uniform quantizer there: 20·log10(2^b − 1)."),
        ("dB below ideal", "below ideal dB", "Ideal minus measured: what the data's shape "
         "and the observer cost. 0 is the best possible; real data loses 10-20 dB."))
}


def render_compare(state, settings: DataSettings) -> None:
    """The whole tab."""
    CS.init_compare_state(state)
    st.subheader("Compare configurations")
    st.caption("Each config is a whole YAML document (weight, outputs, optional activation). "
               "All of them quantize the same layer on the same calibration data (sidebar), "
               "and are scored on the same held-out batch.")
    _render_buttons(state)
    entries = _unique_names([C.parse_entry(name, text)
                             for name, text in state[CS.COMPARE_ENTRIES]])
    _render_editors(state, entries)
    valid = [entry for entry in entries if entry.configs is not None]
    if not valid:
        st.info("Fix a config above to compare it.")
        return
    runs = _compute(valid, settings)
    if not runs:
        return
    try:
        _render_results(state, runs, settings)
        bits = C.SWEEP_BITS + ((C.WIDE_BITS,) if state[CS.COMPARE_WIDE] else ())
        valid = [entry for entry in valid if entry.name in runs]
        _render_sweep(runs, _compute(valid, settings, bits))
    except Exception:  # noqa: BLE001 - the page must never show a traceback
        logger.exception("drawing the comparison failed")
        st.error("Some of the comparison could not be drawn; the details are in the server "
                 "log.", icon="🚫")


# --- inputs ---------------------------------------------------------------------------------


def _render_buttons(state) -> None:
    count = len(state[CS.COMPARE_ENTRIES])
    st.button("Classic set: MinMax vs Percentile vs OMSE vs KL", key=CS.COMPARE_CLASSIC,
              on_click=CS.on_compare_classic, args=(state,), width="content",
              help="Four copies of the Single layer config (same bits, granularity and "
                   "method), each with one observer for weight and outputs.")
    middle, reset, option = st.columns(3, vertical_alignment="center")
    middle.button("Add a config", key=CS.COMPARE_ADD, icon=":material/add:",
                  on_click=CS.on_compare_add, args=(state,), disabled=count >= C.MAX_CONFIGS,
                  width="stretch",
                  help=f"Adds a copy of the Single layer tab's current config (at most "
                       f"{C.MAX_CONFIGS}); then edit its YAML.")
    reset.button("Reset to A/B", key=CS.COMPARE_RESET, on_click=CS.on_compare_reset,
                 args=(state,), width="stretch",
                 help="Back to two configs: A = the Single layer tab's config, B = A with "
                      "other observers.")
    for index, (column, name) in enumerate(zip(st.columns(len(FORMAT_SETS)), FORMAT_SETS)):
        column.button(name, key=CS.compare_key(CS.COMPARE_FORMAT_SET, index),
                      on_click=CS.on_compare_format_set, args=(state, name), width="stretch",
                      help=FORMAT_SET_HELP[name])
    option.toggle("Sweep 16 bits too", key=CS.COMPARE_WIDE, on_change=CS.on_compare_option,
                  args=(state, CS.COMPARE_WIDE),
                  help="Adds 16 bits to the bit-width sweep (2-8 bits). Slower with OMSE/KL; "
                       "shows where each config stops gaining.")
    notice = state.get(CS.COMPARE_NOTICE)
    if notice:
        level, message = notice
        getattr(st, level)(message)
        state[CS.COMPARE_NOTICE] = None


def _render_editors(state, entries: list[C.ParsedEntry]) -> None:
    for index, (entry, column) in enumerate(zip(entries, st.columns(len(entries)))):
        with column:
            name_key = CS.compare_key(CS.COMPARE_NAME, index)
            st.text_input("Name", key=name_key, max_chars=24, on_change=CS.on_compare_edit,
                          args=(state, index),
                          help="The config's name in every table, legend and colour "
                               "(up to 24 characters).")
            st.text_area(f"Config {entry.name} YAML", key=CS.compare_key(CS.COMPARE_YAML, index),
                         height=EDITOR_HEIGHT, on_change=CS.on_compare_edit, args=(state, index),
                         help=YAML_HELP)
            if entry.error is not None:
                st.error(f"{entry.name}: {format_config_error(entry.error)}", icon="🚫")
            for message in entry.warnings:
                st.warning(message, icon="⚠️")
            st.button("Remove", key=CS.compare_key(CS.COMPARE_REMOVE, index),
                      on_click=CS.on_compare_remove, args=(state, index),
                      disabled=len(entries) <= C.MIN_CONFIGS,
                      help=f"Drops this config (at least {C.MIN_CONFIGS} stay).")


def _unique_names(entries: list[C.ParsedEntry]) -> list[C.ParsedEntry]:
    """Blank names become their letter; repeated names get a number."""
    seen: set[str] = set()
    out = []
    for index, entry in enumerate(entries):
        base = entry.name.strip() or CS.COMPARE_LETTERS[index]
        name, n = base, 2
        while name in seen:
            name, n = f"{base} ({n})", n + 1
        seen.add(name)
        out.append(C.ParsedEntry(name, entry.text, entry.configs, entry.error, entry.warnings))
    return out


# --- compute --------------------------------------------------------------------------------


def _compute(entries: list[C.ParsedEntry], settings: DataSettings,
             bits: tuple[int, ...] | None = None) -> dict:
    """Each config's run (``bits`` None) or bit-width sweep, cached, with one progress bar for
    those not cached yet. A config that fails is explained and left out."""
    uploads = DS.session_uploads(st.session_state)
    todo = [e for e in entries
            if compare_cache.lookup_compare(e.configs, settings, bits, uploads) is None]
    what = "Calibrating the configs" if bits is None else "Sweeping the bit widths"
    bar = st.progress(0.0, text=f"{what}…") if todo else None
    runs: dict = {}
    done = 0
    for entry in entries:
        pending = entry in todo

        def report(fraction, text, name=entry.name, start=done):
            if bar is not None:
                share = min(max((start + fraction) / len(todo), 0.0), 1.0)
                bar.progress(share, text=f"{name}: {text}")

        try:
            if bits is None:
                runs[entry.name] = compare_cache.compare_run(
                    entry.configs, settings, report, uploads)
            else:
                runs[entry.name] = compare_cache.compare_sweep(
                    entry.configs, settings, bits, report, uploads)
        except (ValueError, RuntimeError) as err:
            logger.warning("compare: %s could not run: %s", entry.name, err)
            st.error(f"{entry.name} could not be quantized with these settings: {err}",
                     icon="🚫")
        except Exception:  # noqa: BLE001 - the page must never show a traceback
            logger.exception("compare: %s failed", entry.name)
            st.error(f"{entry.name}: something went wrong while quantizing; the details are "
                     "in the server log.", icon="🚫")
        done += pending
    if bar is not None:
        bar.empty()
    return runs


# --- results --------------------------------------------------------------------------------


def _render_results(state, runs: dict[str, C.ConfigRun], settings: DataSettings) -> None:
    colors = CF.config_colors(runs)
    st.subheader("Metrics")
    st.dataframe(style_metrics(metrics_table(runs)), key="compare.metrics", width="stretch",
                 column_config=_column_config(METRIC_COLUMNS))
    st.caption("Best value of each column in green; hover a column header for what it "
               "means. W = weight, Out = output.")
    _render_diff(runs)

    st.subheader("QSNR vs bits per element")
    st.plotly_chart(CF.make_pareto_figure(runs, colors), key="compare.chart.pareto",
                    config=CHART_CONFIG, width="stretch")
    st.caption("What each config costs in storage (element bits plus its scales, e.g. MXFP4 "
               "4.25, NVFP4 4.5) against what it keeps. The starred configs are the Pareto "
               "front: no other config is both cheaper and better.")

    st.subheader("Per-channel QSNR, channels sorted")
    st.caption("Each config's channels sorted from worst to best QSNR: the left end is its "
               "worst channels, a flat line means every channel fares alike.")
    per_channel = {name: {t: run.tensors[t].per_channel_qsnr for t in C.TENSORS}
                   for name, run in runs.items()}
    st.plotly_chart(CF.make_channels_figure(per_channel, colors), key="compare.chart.channels",
                    config=CHART_CONFIG, width="stretch")

    st.subheader("Values, clip ranges and the clip-threshold curve")
    channel, scope = _render_scope(state, runs)
    for tensor in C.TENSORS:
        view = compare_cache.compare_clip_view(tensor, runs, settings, channel, scope,
                                               DS.session_uploads(st.session_state))
        title = CF.TENSOR_TITLES[tensor]
        left, right = st.columns(2)
        with left:
            st.plotly_chart(CF.make_clip_histogram_figure(view, colors, title),
                            key=f"compare.chart.{tensor}_histogram", config=CHART_CONFIG,
                            width="stretch")
        with right:
            st.plotly_chart(CF.make_clip_curve_figure(view, colors, title),
                            key=f"compare.chart.{tensor}_curve", config=CHART_CONFIG,
                            width="stretch")
        if view.skipped:
            st.caption(f"{title}: not on the clip-threshold view: {', '.join(view.skipped)} "
                       "(block_wise: each block's scale comes from its own amax, not from "
                       "one clip threshold; see the Single layer tab's Block scales view).")
    st.caption("Curve: the MSE if values beyond ±t were clipped (clipping + rounding = "
               "total). Dot: each config's own t; hover it for its exact MSE.")


def _render_sweep(runs: dict[str, C.ConfigRun], sweeps: dict[str, C.Sweep]) -> None:
    st.subheader("Bit-width sweep")
    if not sweeps:
        return
    colors = CF.config_colors(runs)
    chosen = {name: {t: runs[name].tensors[t].config.bit_type.bits for t in C.TENSORS}
              for name in sweeps}
    per_element = needs_bits_per_element([runs[name].configs for name in sweeps])
    st.plotly_chart(CF.make_sweep_figure(sweeps, chosen, {n: colors[n] for n in sweeps},
                                         per_element),
                    key="compare.chart.sweep", config=CHART_CONFIG, width="stretch")
    if per_element:
        st.caption("These configs differ in format or scale granularity, so the x-axis is "
                   "bits per element including scales. Integer configs are swept over their "
                   "element width (same scales); a float format (FP8, MX, NVFP4) has one "
                   "fixed width and shows as a single point.")
    st.dataframe(lost_table(runs), key="compare.lost", width="stretch",
                 column_config=_column_config(LOST_COLUMNS))
    st.caption("Reference: the ideal uniform quantizer, 20·log10(2^b − 1) dB (a signal spread "
               "evenly over the full grid; 6.02 dB per bit). At each b, weight and output are "
               "both at b bits (signedness kept; an input activation keeps its width); the "
               "observers re-derive their qparams from the data they hold, no recalibration "
               "(MinMax/Percentile ranges once; OMSE and KL re-run their clip search on their "
               "stored values at each width, the slow part). The table reads each config at its "
               "own widths, from its measured QSNR.")


def _render_scope(state, runs: dict[str, C.ConfigRun]) -> tuple[int | None, str]:
    channels = min(run.tensors["weight"].per_channel_qsnr.numel() for run in runs.values())
    left, right = st.columns([2, 1])
    scope = left.radio("Curves and histograms of", CS.COMPARE_SCOPES, key=CS.COMPARE_SCOPE,
                       horizontal=True, on_change=CS.on_compare_option,
                       args=(state, CS.COMPARE_SCOPE),
                       help="The whole tensor, or one channel: with one channel every "
                            "config's dot sits exactly at its own range for that channel.")
    if state[CS.COMPARE_CHANNEL] >= channels:
        state[CS.COMPARE_CHANNEL] = channels - 1
    channel = right.number_input("Channel", 0, channels - 1, step=1, key=CS.COMPARE_CHANNEL,
                                 on_change=CS.on_compare_option, args=(state, CS.COMPARE_CHANNEL),
                                 disabled=scope == CS.COMPARE_SCOPES[0],
                                 help="Output channel (a weight row, an output column) "
                                      f"to show, 0 to {channels - 1}.")
    if scope == CS.COMPARE_SCOPES[0]:
        return None, "whole tensor"
    return int(channel), f"channel {int(channel)}"


def _render_diff(runs: dict[str, C.ConfigRun]) -> None:
    st.subheader("What differs")
    rows = C.config_diff({name: run.configs for name, run in runs.items()})
    if not rows:
        st.success("The configs are identical (comments and layout aside).")
        return
    table = pd.DataFrame([[_show(v) for v in values] for _, values in rows],
                         index=[path for path, _ in rows], columns=list(runs))
    table.index.name = "field"
    st.dataframe(table, key="compare.diff", width="stretch")


# --- tables --------------------------------------------------------------------------------


def style_metrics(table: pd.DataFrame):
    """The metrics table with each column's best value highlighted and readable numbers."""
    best = best_rows(table)

    def highlight(column: pd.Series) -> list[str]:
        winners = best.get(column.name, [])
        return [BEST_STYLE if name in winners else "" for name in column.index]

    formats = {c: format_db for c in HIGHER_IS_BETTER}
    formats.update({"Weight MSE": "{:.3e}", "Output MSE": "{:.3e}",
                    "Weight clipped (%)": "{:.3f}", "Output clipped (%)": "{:.3f}",
                    "Observer (ms)": "{:.0f}", "Calibration (ms)": "{:.0f}"})
    return table.style.apply(highlight, axis=0).format(formats)


def _column_config(columns: dict) -> dict:
    return {name: st.column_config.Column(label, help=help_text)
            for name, (label, help_text) in columns.items()}


def _show(value: object) -> str:
    return "(absent)" if value is None else str(value)
