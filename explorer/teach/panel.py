"""The "Teach" tab: what the quantizer did, explained with this layer's own numbers.

Five panels, top to bottom: the formulas with this config's numbers, one weight followed through
the quantizer (picked by row/column or by clicking the weight-error heatmap), the error split into
clipping + rounding, the integer codes actually used, and one-click "predict, then reveal"
scenarios. The numbers come from `explorer.teach.analysis` on a cached, calibrated layer
(`analysis.cached_analysis`); no panel lets a traceback reach the page.
"""

from __future__ import annotations

import logging
from functools import partial

import streamlit as st

from explorer.core.formatting import CHART_CONFIG, format_qsnr
from explorer.core.pipeline import TENSOR_TITLES, DataSettings
from explorer.data import state as DS
from explorer.single import results
from explorer.teach import analysis as teach_data
from explorer.teach import state as TS
from explorer.teach.figures import (
    make_clickable_heatmap,
    make_code_histogram,
    make_decomposition_figure,
    make_rmse_gauge,
)
from explorer.teach.formats import float_chain_lines, float_format_lines, latex_number
from explorer.teach.lessons import SCENARIOS, aligned
from quantlib.config_loader import load_config_from_string

logger = logging.getLogger("explorer")

PICK_LABELS = {"first": "the block's first element", "max": "the block's largest error"}
CHAIN_DIGITS = 6  # significant digits of the numbers in the one-weight chain (fits 1024 px)
GRANULARITY_HELP = {
    "layer_wise": "layer_wise: one scale and zero point for the whole tensor.",
    "channel_wise": "channel_wise: one scale and zero point per output channel (a weight row, "
                    "an output column), so one large channel cannot coarsen the others.",
    "block_wise": "block_wise: one scale per block of block_size neighbouring values along "
                  "the input dimension, computed from the block's own largest value.",
}
DECOMPOSITION_HELP = {
    "Total MSE": "Mean squared error of the dequantized values against fp32: clipping + "
                 "rounding. Lower is better.",
    "Clipping MSE": "Error from values beyond the clip range, clamped to its edge. Near 0 "
                    "unless the range clips real signal.",
    "Rounding MSE": "Error from rounding each value to the nearest step of the grid.",
    "Δ²/12 (theory)": "Δ is the step (the scale s). Rounding to a grid of step Δ makes an "
                      "error spread evenly over ±Δ/2, whose mean square is Δ²/12.",
    "Rounding / (Δ²/12)": "Measured rounding error over the theory: about 1 is healthy; well "
                          "below 1 means many values sit on the grid (e.g. zeros).",
}


def render_teach(state, configs: dict | None, settings: DataSettings) -> None:
    """The whole tab; ``configs`` is None while the editors hold an invalid config."""
    st.caption("Everything below is computed from the layer the results come from: the same "
               "configs, data and calibration, so every number is the layer's own.")
    if configs is None:
        st.info("The explanations follow the current config: fix the config errors in the "
                "Single layer tab to see them. The scenarios below still work.")
    else:
        analysis = _analysis(configs, settings)
        if analysis is not None:
            for render in (render_explain, render_follow, render_decomposition,
                           render_integer_view):
                try:
                    render(state, analysis)
                except Exception:  # noqa: BLE001 - the page must never show a traceback
                    logger.exception("drawing the %s panel failed", render.__name__)
                    st.error("This panel could not be drawn; the details are in the server "
                             "log.", icon="🚫")
    render_scenarios(state)


def _analysis(configs: dict, settings: DataSettings):
    try:
        with st.spinner("Calibrating the layer for the explanations…"):
            return teach_data.cached_analysis(configs, settings,
                                            DS.session_uploads(st.session_state))
    except (ValueError, RuntimeError) as err:
        st.error(f"Could not quantize with these settings: {err}", icon="🚫")
    except Exception:  # noqa: BLE001
        logger.exception("teach analysis failed")
        st.error("Something went wrong while quantizing; the details are in the server log.",
                 icon="🚫")
    return None


def _clamp_widget(state, key: str, low: int, high: int) -> None:
    """Keep a number_input's stored value inside its current range (the layer shape may have
    changed since it was set); call before the widget is drawn."""
    if key in state:
        state[key] = min(max(int(state[key]), low), high)


# --- 1. explain -----------------------------------------------------------------------------


def render_explain(state, analysis: teach_data.LayerAnalysis) -> None:
    st.subheader("1 · The formulas, with this config's numbers")
    columns = st.columns(len(analysis.tensors))
    for column, (name, view) in zip(columns, analysis.tensors.items()):
        with column:
            cfg = view.config
            st.markdown(f"**{TENSOR_TITLES[name]}**: {cfg.observer_type}, "
                        f"{cfg.quantization_method}, {cfg.calibration_mode}, "
                        f"{cfg.bit_type.name}",
                        help=GRANULARITY_HELP[cfg.calibration_mode])
            channel = 0
            if view.num_channels > 1:
                key = f"{TS.TEACH_CHANNEL}.{name}"
                _clamp_widget(state, key, 0, view.num_channels - 1)
                channel = st.number_input(f"{TENSOR_TITLES[name]} channel", 0,
                                          view.num_channels - 1, step=1, key=key,
                                          help="channel_wise: each output channel has its "
                                               "own range, scale and zero point. Pick the "
                                               "channel whose numbers the formulas show "
                                               f"(0 to {view.num_channels - 1}).")
            out = teach_data.explain(analysis, name, channel)
            if cfg.bit_type.is_float:
                ts = None if view.tensor_scale is None else float(view.tensor_scale)
                lines = float_format_lines(cfg, float(view.scale.reshape(-1)[
                    out["channel"]]), ts)
            else:
                lines = out["latex"]
            for line in lines:
                st.latex(line)
            st.caption(f"{out['observer']}: {out['note']}")


# --- 2. follow one value --------------------------------------------------------------------


def render_follow(state, analysis: teach_data.LayerAnalysis) -> None:
    st.subheader("2 · Follow one weight through the quantizer")
    rows, cols = analysis.tensors["weight"].values.shape
    error = teach_data.weight_error(analysis)
    blocks, row_block, col_block = teach_data.weight_error_blocks(analysis)
    _clamp_widget(state, TS.TEACH_ROW, 0, rows - 1)
    _clamp_widget(state, TS.TEACH_COL, 0, cols - 1)
    left, right = st.columns([1, 1])
    with left:
        aggregated = row_block > 1 or col_block > 1
        st.radio("A click on an aggregated cell picks", teach_data.PICK_MODES,
                 format_func=PICK_LABELS.get, key=TS.TEACH_PICK, horizontal=True,
                 disabled=not aggregated,
                 help="Each cell is the mean |error| of a block of weights; pick which weight "
                      "of the block to follow: its first one, or the one with the largest "
                      "error (the most instructive).")
        fig = make_clickable_heatmap(blocks, row_block, col_block, (rows, cols),
                                     (state.get(TS.TEACH_ROW, 0), state.get(TS.TEACH_COL, 0)),
                                     "Weight quantization error (click a cell)",
                                     "output channel", "input feature")
        st.plotly_chart(fig, key=TS.TEACH_HEATMAP, selection_mode="points",
                        on_select=partial(on_heatmap_select, state, error, row_block,
                                          col_block),
                        config=CHART_CONFIG, width="stretch")
        note = state.get(TS.TEACH_PICK_NOTE)
        if note:
            st.caption(note)
        elif aggregated:
            st.caption(f"Each cell is a {row_block}×{col_block} block; a click follows "
                       f"{PICK_LABELS[state.get(TS.TEACH_PICK) or 'first']}.")
    with right:
        a, b = st.columns(2)
        row = a.number_input("Row (output channel)", 0, rows - 1, step=1, key=TS.TEACH_ROW,
                             help=f"Which output channel (0 to {rows - 1}) the followed weight "
                                  "sits in; a click on the heatmap sets it too.")
        col = b.number_input("Column (input feature)", 0, cols - 1, step=1, key=TS.TEACH_COL,
                             help=f"Which input feature (0 to {cols - 1}); a click on the "
                                  "heatmap sets it too.")
        view = analysis.tensors["weight"]
        chain = teach_data.follow_weight(analysis, int(row), int(col))
        if view.config.bit_type.is_float:
            _render_float_chain(chain, view)
        else:
            _render_chain(chain, view.config.bit_type, view.num_channels > 1)


def on_heatmap_select(state, error, row_block: int, col_block: int) -> None:
    """The heatmap's selection callback: move the row/column inputs to the clicked cell's
    first or largest-error weight (`teach_data.cell_to_weight`) and say which."""
    point = teach_data.select_point(state.get(TS.TEACH_HEATMAP))
    if point is None:
        return
    mode = state.get(TS.TEACH_PICK) or "first"
    row, col = teach_data.cell_to_weight(error, *point, row_block, col_block, mode)
    state[TS.TEACH_ROW], state[TS.TEACH_COL] = row, col
    r0, c0 = point
    if row_block > 1 or col_block > 1:
        state[TS.TEACH_PICK_NOTE] = (
            f"Clicked the cell of rows {r0}…{r0 + row_block - 1}, columns {c0}…"
            f"{c0 + col_block - 1}: following {PICK_LABELS[mode]}, weight [{row}, {col}].")
    else:
        state[TS.TEACH_PICK_NOTE] = f"Clicked weight [{row}, {col}]."


def _render_chain(chain: dict, bit_type, per_channel: bool) -> None:
    n = partial(latex_number, digits=CHAIN_DIGITS)
    r, c = chain["row"], chain["col"]
    z = chain["zero_point"]
    lines = [
        aligned(rf"x &= w[{r}, {c}] = {n(chain['x'])}",
                rf"x \cdot \tfrac{{1}}{{s}} &= {n(chain['x'])} \times {n(chain['inv_scale'])}",
                rf"&= {n(chain['scaled'])}"),
        aligned(rf"\mathrm{{round}}(\cdot) &= {n(chain['rounded'])}",
                r"&\quad(\text{half to even})",
                rf"+\,z &= {n(chain['rounded'])} + {z} = {n(chain['plus_zero_point'])}",
                rf"q = \mathrm{{clamp}}(\cdot) &= {chain['code']}"
                + (r"\quad(\text{clamped})" if chain["clamped"] else ""),
                rf"&\quad\text{{to }} [{bit_type.qmin}, {bit_type.qmax}]"),
        aligned(r"\hat{x} &= (q - z)\, s",
                rf"&= ({chain['code']} - {z}) \times {n(chain['scale'])}",
                rf"&= {n(chain['dequantized'])}",
                rf"\text{{error}} &= \hat{{x}} - x = {n(chain['error'])}"),
    ]
    for line in lines:
        st.latex(line)
    where = f"[{r}, {c}]"
    _render_layer_match(chain, f"`quant_weight{where}` = {chain['layer_code']}")
    channel = (f"block [{r}, {chain['group_start']}:{chain['group_end']}]'s own (block_wise, "
               f"amax {chain['group_amax']:.6g})" if chain.get("group") == "block"
               else f"row {r}'s own (per-channel)" if per_channel
               else "the whole tensor's (per-tensor)")
    st.caption(f"s = {chain['scale']:.9g} and z = {chain['zero_point']} are {channel}; "
               "1/s is a float32 reciprocal, as in the kernels.")


def _render_layer_match(chain: dict, code: str) -> None:
    """Whether the chain's result is the layer's own stored code and dequantized value."""
    where = f"[{chain['row']}, {chain['col']}]"
    stored = f"{code}, `dequant_weight{where}` = {chain['layer_dequantized']:.9g}"
    if chain["matches"]:
        st.success(f"Matches the layer exactly: {stored}.", icon="✅")
    else:
        st.error(f"Differs from the layer: {stored}.", icon="🚫")


def _render_float_chain(chain: dict, view) -> None:
    """The float/MX chain: group amax -> shared scale -> x / s -> nearest element -> x̂."""
    ts = None if view.tensor_scale is None else float(view.tensor_scale)
    for line in float_chain_lines(chain, view.config.bit_type, ts):
        st.latex(line)
    where = f"[{chain['row']}, {chain['col']}]"
    _render_layer_match(chain, f"`quant_weight{where}` = {chain['layer_code']} (grid index)")
    st.caption(f"The {chain['group']} holds columns {chain['group_start']}…"
               f"{chain['group_end'] - 1} of row {chain['row']}; its largest |w| sets the "
               "scale, so one outlier in it coarsens every other value of the block.")


# --- 3. error decomposition -----------------------------------------------------------------


def render_decomposition(state, analysis: teach_data.LayerAnalysis) -> None:
    st.subheader("3 · Error decomposition: clipping + rounding")
    names = list(analysis.tensors)
    if state.get(TS.TEACH_TENSOR) not in names:
        state[TS.TEACH_TENSOR] = names[0]
    name = st.radio("Tensor", names, format_func=TENSOR_TITLES.get, key=TS.TEACH_TENSOR,
                    horizontal=True,
                    help="Which quantized tensor to split into clipping and rounding error.")
    d = teach_data.decompose(analysis, name)
    uniform = not analysis.tensors[name].config.bit_type.is_float
    cards = [("Total MSE", f"{d['total_mse']:.3e}"),
             ("Clipping MSE", f"{d['clipping_mse']:.3e}"),
             ("Rounding MSE", f"{d['rounding_mse']:.3e}"),
             ("Δ²/12 (theory)", f"{d['theoretical_rounding_mse']:.3e}" if uniform else "n/a"),
             ("Rounding / (Δ²/12)", f"{d['rounding_vs_theory']:.3f}" if uniform else "n/a")]
    for column, (label, value) in zip(st.columns(len(cards)), cards):
        column.metric(label, value, help=DECOMPOSITION_HELP[label])
    st.caption(f"Clipping + rounding = {d['clipping_mse'] + d['rounding_mse']:.6e} = total "
               f"{d['total_mse']:.6e}; {100 * d['clip_fraction']:.3f} % of the values lie over "
               "half a step outside the clip range. "
               + ("The output is decomposed as its quantizer sees it (the pre-quantization "
                  "output of the eval batch), so weight error is not part of it."
                  if name == "output" else ""))
    left, right = st.columns([1, 2])
    with left:
        if not uniform:
            fmt = analysis.tensors[name].config.bit_type.name
            st.info(f"Δ²/12 and RMSE / scale do not apply to {fmt}: its grid is not uniform "
                    "(the step grows with the value), so there is no single Δ. Clipping + "
                    "rounding above still hold.")
        else:
            st.plotly_chart(make_rmse_gauge(d["rmse_over_scale"], d["rounding_only"],
                                            "RMSE / scale"),
                            key="teach.chart.gauge", config=CHART_CONFIG, width="stretch")
            st.caption("≈ 0.29 (1/√12): rounding only, a healthy range. Well above: clipping "
                       "or a badly chosen range dominates. Below: many values sit on the grid "
                       "(zeros).")
    with right:
        st.plotly_chart(make_decomposition_figure(
            d["per_channel"], d["scale"], f"{TENSOR_TITLES[name]}: MSE per channel"),
            key="teach.chart.decomposition", config=CHART_CONFIG, width="stretch")


# --- 4. integer domain ----------------------------------------------------------------------


def render_integer_view(state, analysis: teach_data.LayerAnalysis) -> None:
    st.subheader("4 · The integer domain: which codes are used")
    columns = st.columns(len(analysis.tensors))
    for column, name in zip(columns, analysis.tensors):
        stats = teach_data.integer_codes(analysis, name)
        bits = stats["bits"]
        source = "integer codes" if name == "weight" else "codes of the eval batch"
        with column:
            st.plotly_chart(make_code_histogram(stats, f"{TENSOR_TITLES[name]}: {source}"),
                            key=f"teach.chart.codes.{name}", config=CHART_CONFIG,
                            width="stretch")
            a, b = st.columns(2)
            a.metric(f"{TENSOR_TITLES[name]} codes used",
                     f"{100 * stats['used_fraction']:.1f} %",
                     help=f"{stats['codes_used']:,} of the {stats['num_codes']:,} codes occur"
                          + (" (float format: each code is one element value)"
                             if stats["is_float"] else f" (2^{bits})"))
            b.metric(f"{TENSOR_TITLES[name]} effective bits",
                     f"{stats['effective_bits']:.2f} of {bits}",
                     help="The entropy of the code distribution: what an ideal entropy coder "
                          "would need per value")


# --- 5. scenarios ---------------------------------------------------------------------------


def render_scenarios(state) -> None:
    st.subheader("5 · Scenarios: predict, then reveal")
    st.caption("Load a scenario (its data + config A, as a full commented YAML, into the "
               "editors), predict the answer, then open the reveal to see config A against "
               "config B on the same data.")
    notice = state.get(TS.TEACH_NOTICE)
    for name, scenario in SCENARIOS.items():
        loaded = state.get(TS.TEACH_SCENARIO) == name
        with st.container(border=True):
            head, button = st.columns([4, 1])
            head.markdown(f"**{scenario.title}**" + ("  ✅ loaded" if loaded else ""))
            head.caption(scenario.predict)
            button.button("Load", key=f"{TS.TEACH_LOAD}.{name}", on_click=TS.on_scenario,
                          args=(state, name), width="stretch",
                          help=f"Puts this scenario's data (sidebar) and config A "
                               f"({scenario.label_a}) into the editors, replacing them.")
            if notice is not None and notice[0] == name:  # the confirmation, by its button
                getattr(st, notice[1])(notice[2], icon="✅" if notice[1] == "success"
                                       else "🚫")
                state[TS.TEACH_NOTICE] = None
            label = f"Reveal: {scenario.label_a} vs {scenario.label_b}"
            if not loaded:  # no peeking: the reveal opens once the scenario is loaded
                st.button(label, key=f"{TS.TEACH_REVEAL}.locked.{name}", disabled=True,
                          help="Load the scenario and make your prediction first.")
                continue
            reveal = st.expander(label, key=f"{TS.TEACH_REVEAL}.{name}", on_change="rerun")
            with reveal:
                if reveal.open:  # runs both configs only once opened (cached after)
                    _render_reveal(scenario)


def _render_reveal(scenario) -> None:
    st.markdown(scenario.reveal)
    try:
        result_a = results.cached_result(load_config_from_string(scenario.config_a),
                                       scenario.settings)[0]
        result_b = results.cached_result(load_config_from_string(scenario.config_b),
                                       scenario.settings)[0]
    except Exception:  # noqa: BLE001
        logger.exception("scenario reveal failed")
        st.error("The live comparison could not run; the details are in the server log.")
        return
    lines = [f"| Tensor | QSNR A ({scenario.label_a}) | QSNR B ({scenario.label_b}) | B − A |",
             "|---|---:|---:|---:|"]
    for row in teach_data.scenario_rows(result_a, result_b):
        a, b = row["qsnr_a"], row["qsnr_b"]
        delta = (f"{b - a:+.2f} dB" if a is not None and b is not None
                 and abs(a) != float("inf") and abs(b) != float("inf") else "n/a")
        lines.append(f"| {row['tensor']} | {format_qsnr(a)} | {format_qsnr(b)} | {delta} |")
    st.markdown("\n".join(lines))
    st.caption("Live numbers on the scenario's data (both configs run through the pipeline "
               "and are cached).")
