"""The sidebar (presets, sample data), the config editors and the Single layer tab's results.

State keys come from `explorer.core.state`, results from `explorer.single.results`, figures
from `explorer.core.pipeline.build_figures`. No panel ever lets an exception's traceback reach
the page: `compute_results` catches, shows a friendly message and logs the traceback.
"""

from __future__ import annotations

import logging

import streamlit as st

from explorer.core import state as S
from explorer.core.formatting import CHART_CONFIG, format_config_error
from explorer.core.panel import live_chart, render_stale_banner, run_with_progress
from explorer.core.pipeline import DataSettings, PipelineResult, config_key
from explorer.data import panel as data_panel
from explorer.data import state as DS
from explorer.data import synthetic
from explorer.single import metrics, results
from explorer.single import state as SS
from quantlib.quant_config import ALL_CALIBRATION_MODES, OBSERVER_TYPES, QUANTIZATION_METHODS

logger = logging.getLogger("explorer")

EDITOR_HEIGHT = 215
FIELD_HELP = {
    "observer_type": "How the clip range is chosen from the data: MinMax takes the extremes; "
                     "EMA smooths them over batches; Percentile ignores the rarest tail; OMSE "
                     "searches the range with the lowest MSE; KL matches the distribution "
                     "(TensorRT's entropy calibration).",
    "bits": "Integer width: 2^bits levels. Each extra bit halves the step and adds ~6 dB QSNR.",
    "signed": "Signed codes (int8: -128..127) or unsigned (uint8: 0..255). Unsigned suits "
              "non-negative tensors such as ReLU outputs.",
    "quantization_method": "Uniform = symmetric: a grid centred on 0 (zero point 0). Affine = "
                           "asymmetric: the grid spans exactly [min, max], with a zero point.",
    "calibration_mode": "layer_wise: one scale for the whole tensor. channel_wise: one scale "
                        "per channel (weight rows, output or input features), which protects "
                        "small channels from large ones. block_wise: one scale per block of "
                        "block_size neighbouring values along the input dimension (MX and "
                        "NVFP4 need it).",
    "format": "How each value is stored. int: an integer grid (set Bits and Signed). fp8: "
              "8-bit floats, finer near zero. mx*: OCP microscaling, a shared power-of-two "
              "scale per 32 values. nvfp4: 4-bit floats with an fp8 scale per 16 values and "
              "one fp32 scale for the tensor. Float formats fix Bits and Signed.",
    "block_size": "block_wise only: how many neighbouring values share one scale. Smaller "
                  "blocks follow local outliers better but store more scales (MX needs 32, "
                  "NVFP4 16; integers any size that divides the row).",
    "percentile_alpha": "PercentileObserver only: the share of values kept inside the clip "
                        "range (0.9999 clips the 0.01 % most extreme values).",
    "kl_bins": "KLObserver only: histogram bins for the entropy search; more bins resolve the "
               "threshold more finely and cost more time.",
}
FIELD_LABELS = {
    "observer_type": "Observer",
    "bits": "Bits",
    "signed": "Signed",
    "quantization_method": "Method",
    "calibration_mode": "Granularity",
    "format": "Format",
    "block_size": "block_size",
    "percentile_alpha": "percentile_alpha",
    "kl_bins": "kl_bins",
}


# --- sidebar ------------------------------------------------------------------------------


def render_sidebar(state) -> DataSettings:
    """Config presets, upload and download, then the sample-data settings."""
    with st.sidebar:
        st.header("Config")
        st.selectbox("Preset", S.preset_names(), key=S.PRESET, on_change=S.on_preset_change,
                     args=(state,), help="Load a YAML preset from configs/ into the editors.")
        st.file_uploader("Upload a YAML config", type=["yaml", "yml"], key=S.UPLOAD,
                         on_change=S.on_upload, args=(state,), max_upload_size=1,
                         help=S.CONFIG_UPLOAD_HELP)
        SS.refresh_document(state)
        st.download_button("Download current YAML", data=state[SS.DOCUMENT].read,
                           file_name="quant_config.yaml", mime="application/x-yaml",
                           help="Every enabled section as one YAML file, comments kept.",
                           key=S.DOWNLOAD, on_click="ignore", width="stretch")
        st.toggle("Quantize the input activation too", key=S.ACT_ENABLED,
                  help="Also fake-quantize the layer's input x before the matmul (a third "
                       "editor, `activation:`); off, the input stays fp32 as in weight-only "
                       "schemes.")
        notice = state.get(S.CONFIG_NOTICE)
        if notice:
            level, message = notice
            getattr(st, level)(message)
            state[S.CONFIG_NOTICE] = None
        st.header("Sample data")
        shape_fixed = data_panel.render_source(state)  # real layers fix (and show) the shape
        limits = DS.data_limits()
        left, right = st.columns(2)
        for column, name, label in ((left, "in_features", "In features"),
                                    (right, "out_features", "Out features")):
            column.number_input(label, *limits[name], step=1, key=S.data_key(name),
                                disabled=shape_fixed,
                                help="The Linear's shape: weight [out, in]. A real layer "
                                     "fixes it.")
        st.number_input("Seed", *limits["seed"], step=1, key=S.data_key("seed"),
                        help="Seeds the synthetic weight and inputs (and the digits MLP's "
                             "training); the same seed gives the same numbers.")
        st.selectbox("Weight source", synthetic.WEIGHT_SOURCES, key=S.data_key("weight_source"),
                     disabled=state[S.data_key("source")] != "synthetic",
                     help="The synthetic weight's distribution. Heavy tails and outlier "
                          "channels are where MinMax loses to Percentile, OMSE and KL.")
        st.selectbox("Calibration input", synthetic.INPUT_SOURCES,
                     key=S.data_key("input_source"), disabled=data_panel.inputs_fixed(state),
                     help="The inputs the layer is calibrated and evaluated on; 'LLM-like' "
                          "has a few large outlier features, as real transformers do.")
        left, right = st.columns(2)
        left.number_input("Batches", *limits["num_batches"], step=1,
                          key=S.data_key("num_batches"),
                          help="Calibration batches fed to the output observer.")
        right.number_input("Batch size", *limits["batch_size"], step=1,
                           key=S.data_key("batch_size"), help="Rows per calibration batch.")
        settings = S.data_settings(state)
        st.caption(data_panel.data_caption(settings))
    return settings


# --- editors ------------------------------------------------------------------------------


START_HERE = (
    "**Start here:** a `nn.Linear` quantized with these configs, run on held-out inputs. "
    "**QSNR**: higher is better, ~6 dB per bit (8-bit ≈ 40–50 dB). **Try:** *Bits* → 4 and "
    "read the deltas; *Granularity* → `layer_wise`; sidebar *Weight source* → “Outlier "
    "channels”."
)


def render_start_here(state) -> None:
    """A short orientation strip above the editors, until the user dismisses it."""
    if state.get(SS.START_HIDDEN):
        return
    text, button = st.columns([12, 1], vertical_alignment="center")
    text.info(START_HERE)
    button.button("Hide", key="single.start_dismiss", type="tertiary",
                  help="Hide this introduction for the rest of the session.",
                  on_click=lambda: state.__setitem__(SS.START_HIDDEN, True))


def render_editors(state) -> tuple[dict | None, bool]:
    """A switcher over the enabled sections, then the chosen one's YAML text area beside its
    field widgets. Errors and notices of every section show below, so a hidden section's
    problem stays visible.

    Returns ``(configs, has_errors)``: configs is the loader's ``{'weight', 'output',
    'activation'}`` when every enabled section is valid, else None.
    """
    sections = S.enabled_sections(state)
    configs: dict = {"activation": None}
    problems = []
    # Only the chosen section's editor is drawn (its 10 widgets cost the browser ~60 ms per
    # edit); another section's text is still parsed, and its problems shown below.
    shown = _switcher(state, SS.EDITOR_SECTION, sections, "Config section",
                      SS.editor_section_label)
    for section in sections:
        if section == shown:
            config, error, warnings = render_section_editor(
                state, section, reopened=state.get(SS.EDITOR_DRAWN) != section)
            state[SS.EDITOR_DRAWN] = section
        else:
            config, error, warnings = S.parse_text(state[S.store_key(section)], section)
        configs[S.RESULT_KEYS[section]] = config
        problems.append((section, error, warnings))
    for section, error, warnings in problems:
        title = S.SECTION_TITLES[section]
        notice = state.get(S.notice_key(section))
        if notice:
            st.warning(f"{title}: {notice}", icon="⚠️")
            state[S.notice_key(section)] = None
        if error is not None:
            st.error(f"{title} config error — {format_config_error(error)}", icon="🚫")
        for message in warnings:
            st.warning(f"{title}: {message}", icon="⚠️")
    SS.refresh_document(state)  # the sidebar's download button, drawn outside this fragment
    valid = all(configs[S.RESULT_KEYS[s]] is not None for s in sections)
    return (configs if valid else None), not valid


def _switcher(state, key: str, options, label: str, format_func=str):
    """A segmented control choosing one of ``options`` (kept in ``state[key]``; the first
    when unset or no longer offered), which it returns. Not tabs: a fragment rerun redraws
    every tab bar it holds, and tab bars cost the browser more script per edit than this."""
    if state.get(key) not in options:
        state[key] = options[0]
    return st.segmented_control(label, options, required=True, format_func=format_func,
                                key=key, label_visibility="collapsed")


def render_section_editor(state, section: str, reopened: bool = False):
    """One section's YAML text area and field widgets (from its stored text when the switcher
    just ``reopened`` the section); returns the loader's ``(config or None, error or None,
    warnings)``."""
    S.ensure_section_widgets(state, section, reopened)
    # Keyed containers: below 1280 px the page style stacks the text above the widgets.
    editor = st.container(key=f"editor-{section}")
    text_col, widget_col = editor.columns([1.7, 3])
    with text_col:
        st.text_area(f"{section} YAML", key=S.text_key(section), height=EDITOR_HEIGHT,
                     on_change=S.on_text_change, args=(state, section),
                     help="The body of the section (no header). Press Ctrl+Enter or click "
                          "outside to apply.")
    with widget_col.container(key=f"fields-{section}"):
        _render_field_widgets(state, section)
    return S.parse_text(state[S.store_key(section)], section)


def _render_field_widgets(state, section: str) -> None:
    """Two rows: the choices (format, observer, method, granularity), then the numbers (bits
    and signed, disabled for float formats; block_size, enabled with block_wise; the
    observer's own parameter, disabled when another observer is chosen)."""
    def common(field: str) -> dict:
        return {"key": S.field_key(section, field), "on_change": S.on_field_change,
                "args": (state, section, field), "help": FIELD_HELP[field]}

    fmt, observer, method, granularity = st.columns([1.35, 1.75, 1.2, 1.45])
    fmt.selectbox(FIELD_LABELS["format"], S.FORMAT_CHOICES, **common("format"))
    observer.selectbox(FIELD_LABELS["observer_type"], OBSERVER_TYPES, **common("observer_type"))
    method.selectbox(FIELD_LABELS["quantization_method"], QUANTIZATION_METHODS,
                     **common("quantization_method"))
    granularity.selectbox(FIELD_LABELS["calibration_mode"], ALL_CALIBRATION_MODES,
                          **common("calibration_mode"))
    bits, signed, block, alpha, bins = st.columns([1, 1.1, 0.95, 1.2, 1],
                                                  vertical_alignment="bottom")
    is_float = state[S.field_key(section, "format")] != S.INT_FORMAT
    bits.number_input(FIELD_LABELS["bits"], min_value=2, max_value=16, step=1,
                      disabled=is_float, **common("bits"))
    signed.toggle(FIELD_LABELS["signed"], disabled=is_float, **common("signed"))
    block.number_input(FIELD_LABELS["block_size"], min_value=2, max_value=8192, step=1,
                       disabled=state[S.field_key(section, "calibration_mode")] != "block_wise",
                       **common("block_size"))
    chosen = state[S.field_key(section, "observer_type")]
    alpha.number_input(FIELD_LABELS["percentile_alpha"], min_value=0.500001, max_value=1.0,
                       step=0.0001, format="%.6f", disabled=chosen != "PercentileObserver",
                       **common("percentile_alpha"))
    bins.number_input(FIELD_LABELS["kl_bins"], min_value=16, max_value=65536, step=128,
                      disabled=chosen != "KLObserver", **common("kl_bins"))


# --- compute ------------------------------------------------------------------------------


def compute_results(configs: dict, settings: DataSettings):
    """Cached result + figures for ``configs`` on ``settings``, with a progress bar while
    calibrating. Returns None (after showing a friendly error) when the run fails."""
    uploads = DS.session_uploads(st.session_state)
    hit = results.lookup_result(configs, settings, uploads)
    if hit is not None:
        return hit
    return run_with_progress(
        "Calibrating…",
        lambda progress: results.cached_result(configs, settings, uploads, progress),
        "explorer pipeline",
        failed="Something went wrong while quantizing; the details are in the server log. "
               "The last good results are shown below.",
        rejected=lambda err: f"Could not quantize with these settings: {err}")


# --- results ------------------------------------------------------------------------------

#: The results' stylesheet, drawn once outside the Single layer fragment: a <style> inside it
#: would be replaced on every edit, and each new stylesheet restyles the whole page.
RESULTS_STYLE = metrics.CARDS_STYLE


def render_results(computed, stale: bool, has_errors: bool) -> None:
    """Metric cards and every figure of ``computed`` = (result, figures); a banner first when
    they are stale (from the last valid config). Drawing failures are logged, not shown."""
    if computed is None:
        st.info("No results yet: fix the config above to run the first calibration.")
        return
    if stale:
        render_stale_banner(has_errors, "see above", "The plots below are from the last valid "
                            "config; your edits are kept.")
    result, figures = computed
    try:
        render_metric_cards(result, st.session_state)
        render_figures(result, figures)
    except Exception:  # noqa: BLE001 - the page must never show a traceback
        logger.exception("drawing the results failed")
        st.error("Some results could not be drawn; the details are in the server log.",
                 icon="🚫")


def render_metric_cards(result: PipelineResult, state) -> None:
    """One row of metric cards per tensor: QSNR, MSE, cosine, clip %, compression, each with
    its change since the previous (different) result of this session."""
    cards = metrics.metric_cards(result)
    key = (config_key({n: t.config for n, t in result.tensors.items()}), result.settings)
    current = state.get(SS.CURRENT_METRICS)
    if current is None or current[0] != key:  # a new result: the old one becomes "previous"
        state[SS.PREVIOUS_METRICS] = current
        state[SS.CURRENT_METRICS] = current = (key, metrics.card_values(cards))
    previous = state.get(SS.PREVIOUS_METRICS)
    before = {} if previous is None else previous[1]
    unprofiled = frozenset(n for n, t in result.tensors.items() if t.statistics is None)
    # one element: cheap to redraw per edit (styled by RESULTS_STYLE, drawn outside)
    st.html(metrics.cards_html(cards, before, unprofiled))


RESULT_VIEWS = ("Histograms", "Error maps", "Block scales", "Per channel", "Profiling")
VIEW_HELP = {
    "Histograms": "fp32 values against their dequantized copies; the dashed lines are the "
                  "clip range, grey lines the quantization grid (integers up to 6 bits; "
                  "float formats always: their steps widen away from zero).",
    "Block scales": "block_wise: each block of block_size values has its own scale (MX: a "
                    "power of two; NVFP4: an fp8 scale times the tensor's fp32 scale). "
                    "Colour is log2(scale), so a block holding an outlier stands out.",
    "Error maps": "Mean |x − x̂| per block of the weight (output channel × input feature) "
                  "and of the output (evaluation sample × output channel).",
    "Per channel": "QSNR and clip range of each channel (`channel_wise` gives each its own "
                   "scale; `layer_wise` one for all): the weak channels stand out.",
    "Profiling": "Where the time went and how many bytes the quantized tensors take.",
}


def render_figures(result: PipelineResult, figures) -> None:
    """One view at a time: only the chosen view's figures are built and sent."""
    names = list(result.tensors)
    keys = {
        "Histograms": [f"{n}_histogram" for n in names],
        "Error maps": [f"{n}_error" for n in names],
        "Block scales": [f"{n}_scales" for n in names],
        "Per channel": [f"{n}_channels" for n in names],
        "Profiling": ["timing", "memory"],
    }
    view = _switcher(st.session_state, SS.RESULT_VIEW, RESULT_VIEWS, "Result view")
    shown = [k for k in keys[view] if k in figures]
    if view == "Error maps" and st.toggle(
            "Log colour scale", value=True, key=SS.ERROR_LOG,
            help="Colour by log10 |error|: rounding noise spans decades, and a linear "
                 "scale paints it one flat colour next to a few large (clipped) "
                 "errors."):
        shown = [f"{k}_log" for k in shown]
    if view == "Per channel" and st.toggle(
            "Worst channels first", value=True, key=SS.CHANNELS_SORTED,
            help="Sort channels by QSNR so the weak ones line up on the left (their "
                 "numbers are in the labels and the hover); off: index order."):
        shown = [f"{k}_sorted" for k in shown]
    if not shown:
        st.info("No tensor is block_wise: set Granularity to block_wise (or pick an "
                "MX or NVFP4 format) to see one scale per block."
                if view == "Block scales"
                else "Nothing to show here: profiling is off for every tensor.")
    for column, key in zip(st.columns(max(len(shown), 1)), shown):
        with column:
            # updated in place: an edit does not draw the chart from scratch
            live_chart(figures[key], key=f"chart.{key}", config=CHART_CONFIG)
            if key.endswith("_histogram"):
                _level_caption(result, key.removesuffix("_histogram"))
    st.caption(VIEW_HELP[view])  # under the plots: they come first on the screen


def _level_caption(result: PipelineResult, name: str) -> None:
    tensor = result.tensors[name]
    if tensor.levels is None:
        return
    unit = "block" if tensor.config.is_block_wise else "channel"
    what = (f"the {tensor.config.bit_type.name} grid" if tensor.config.bit_type.is_float
            else "the quantization grid")
    if tensor.scale.numel() > 1:
        st.caption(f"Grey lines: {what} of {unit} {tensor.level_channel} (the widest); each "
                   f"{unit} has its own scale.")
    elif tensor.config.bit_type.is_float:
        st.caption(f"Grey lines: {what} (element values × scale): non-uniform, finest "
                   "near zero.")
