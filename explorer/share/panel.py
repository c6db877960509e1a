"""The sidebar's "Share & export" section, and reading a shared link once per session.

- `load_link_once`: on a session's first run, a ``?s=...`` link (`explorer.share.link`) loads the
  editor texts, the activation toggle and the data settings it carries. A bad or hostile link
  loads nothing: the page says why (`render_link_notice`) and shows the default state.
- `render_share_export`: keeps the page URL's ``s`` parameter in step with the current valid
  state (so the address bar is always a shareable link), shows that link with a copy button,
  and offers downloads: the standalone HTML report, metrics JSON/CSV and the quantized layer
  as ``.safetensors``. The large ones (report, safetensors) are built only when clicked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping

import streamlit as st

from explorer.compare import cache as compare_cache
from explorer.compare import state as CS
from explorer.compare.runs import SWEEP_BITS, parse_entry
from explorer.core import state as S
from explorer.core.pipeline import DataSettings, SampleData, build_layer
from explorer.data import cache as data_cache
from explorer.data import state as DS
from explorer.model import cache as model_cache
from explorer.share import state as SS
from explorer.share.export import export_layer
from explorer.share.link import PARAM, SharedState, ShareError, decode_state, encode_state
from explorer.share.report import build_report_html, metrics_to_csv, metrics_to_json
from explorer.single import results
from quantlib.quant_linear import QuantLinear

logger = logging.getLogger("explorer")

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # ASCII punctuation: Markdown can escape it
DOWNLOAD_KEYS = {"html": "share.download_html", "json": "share.download_json",
                 "csv": "share.download_csv", "safetensors": "share.download_safetensors"}


# --- pure helpers ---------------------------------------------------------------------------


def shared_state_of(state: MutableMapping) -> SharedState:
    """The `SharedState` a link should carry for the current session state. The activation
    text travels even while its toggle is off, unless it is invalid (a link holds valid texts
    only)."""
    enabled = bool(state.get(S.ACT_ENABLED))
    activation = state[S.store_key("activation")]
    if not enabled and S.parse_text(activation, "activation")[0] is None:
        activation = None
    transform = state.get(S.store_key(S.TRANSFORM)) if state.get(S.TRANSFORM_ENABLED) else None
    return SharedState(state[S.store_key("weight")], state[S.store_key("outputs")], activation,
                       S.data_settings(state), enabled, transform)


def apply_link(state: MutableMapping, params) -> tuple[str, str] | None:
    """Load the state a link's query parameters carry; returns the (level, message) notice,
    or None when there is no link. Never raises: a bad link changes nothing."""
    if PARAM not in params:
        return None
    try:
        shared = decode_state({PARAM: params[PARAM]})
    except ShareError as err:
        return "error", (f"This link could not be opened: {markdown_literal(str(err))}. "
                         "Showing the default configuration instead.")
    except Exception:  # noqa: BLE001 - a link must never crash the page
        logger.exception("decoding a shared link failed")
        return "error", ("This link could not be opened (see the server log). Showing the "
                         "default configuration instead.")
    S.load_sections(state, {"weight": shared.weight_yaml, "outputs": shared.outputs_yaml,
                            "activation": shared.activation_yaml},
                    shared.activation_enabled, shared.settings)
    state[S.TRANSFORM_ENABLED] = shared.transform_yaml is not None
    if shared.transform_yaml is not None:
        state[S.store_key(S.TRANSFORM)] = shared.transform_yaml
    return "success", "Loaded the configuration and data settings from the link."


def markdown_literal(text: str) -> str:
    """``text`` with every ASCII punctuation character backslash-escaped, so Markdown shows
    it as written. A link's error quotes values from the link, and the notice is Markdown:
    unescaped, a crafted link could put images (fetched from anywhere on opening it), links
    or formatting into the page of whoever opens it."""
    return _PUNCTUATION.sub(r"\\\1", text)


def safetensors_bytes(configs: dict, data: SampleData, yaml_text: str,
                      layer: QuantLinear | None = None) -> bytes:
    """The quantized layer for ``configs`` on ``data`` as safetensors: integer codes, qparams,
    bias and the YAML document as metadata (`export.export_layer`). ``layer`` is the already
    calibrated one when at hand, else it is built (`pipeline.build_layer`)."""
    return export_layer(layer if layer is not None else build_layer(configs, data), yaml_text)


def link_url(base: str | None, token: str) -> str:
    """The shareable URL: the page address without its query, plus ``?s=<token>``."""
    page = (base or "").split("?", 1)[0].split("#", 1)[0]
    return f"{page}?{PARAM}={token}"


# --- Streamlit ------------------------------------------------------------------------------


def load_link_once(state: MutableMapping) -> None:
    """On the session's first run, load the state of a ``?s=`` link in the URL (call before
    any widget is drawn). The notice is shown by `render_link_notice`."""
    if state.get(SS.SHARE_LOADED):
        return
    state[SS.SHARE_LOADED] = True
    state[SS.SHARE_NOTICE] = apply_link(state, st.query_params)


def render_link_notice(state: MutableMapping) -> None:
    """Show (once) what happened to the link the session was opened with."""
    notice = state.get(SS.SHARE_NOTICE)
    if notice:
        level, message = notice
        getattr(st, level)(message, icon="🔗")
        state[SS.SHARE_NOTICE] = None


def render_share_export(state: MutableMapping, configs: dict | None, settings: DataSettings,
                        computed) -> None:
    """The sidebar's share link and downloads, in a popover. ``computed`` is the current (not
    stale) (result, figures), or None when the current configs have no results."""
    # In a popover: its content is not drawn until opened, so an edit does not redraw it.
    with st.sidebar, st.popover("Share & export", icon=":material/share:", width="stretch",
                                help="A link to this exact state, an HTML report, the "
                                     "metrics and the quantized weights."):
        if configs is None or computed is None:
            st.caption("Fix the config (or the data settings) to share or export; the link "
                       "and downloads always describe results that are on screen.")
            return
        _render_link(state)
        result, figures = computed
        yaml_text = S.document_text(state)
        stem = "quant_report"
        uploads = DS.session_uploads(st.session_state)
        entries = tuple(state.get(CS.COMPARE_ENTRIES) or ())  # parsed only on a click
        st.download_button("HTML report", data=lambda: build_report_html(
            result, yaml_text, "Quantization explorer report", figures,
            **report_extras(entries, configs, settings, uploads)),
            file_name=f"{stem}.html", mime="text/html", key=DOWNLOAD_KEYS["html"],
            on_click="ignore", width="stretch",
            help="One standalone page: metrics, every interactive plot and the YAML.")
        left, right = st.columns(2)
        # built on click (a callable): eager bytes would be served, and fetched, every edit
        left.download_button("Metrics JSON", data=lambda: metrics_to_json(result),
                             file_name="metrics.json", mime="application/json",
                             key=DOWNLOAD_KEYS["json"], on_click="ignore", width="stretch")
        right.download_button("Metrics CSV", data=lambda: metrics_to_csv(result),
                              file_name="metrics.csv", mime="text/csv",
                              key=DOWNLOAD_KEYS["csv"], on_click="ignore", width="stretch")
        # cached; captured so the click needs no session
        data = data_cache.sample_data(settings, uploads)
        layer = results.lookup_layer(configs, settings, uploads)
        st.download_button("Quantized weights (.safetensors)", data=lambda: safetensors_bytes(
            configs, data, yaml_text, layer),
            file_name="quant_layer.safetensors", mime="application/octet-stream",
            key=DOWNLOAD_KEYS["safetensors"], on_click="ignore", width="stretch",
            help="Integer codes, scales, zero points and bias; the YAML is in the metadata.")


def report_extras(entries, configs: dict, settings: DataSettings, uploads) -> dict:
    """The Compare results of ``entries`` ((name, YAML) pairs) and the Whole model result of
    ``configs`` already computed (looked up in their caches, never computed here), as
    `build_report_html`'s optional arguments."""
    runs, sweeps = {}, {}
    for name, text in entries:
        entry = parse_entry(name, text)
        if entry.configs is None:
            continue
        run = compare_cache.lookup_compare(entry.configs, settings, None, uploads)
        sweep = compare_cache.lookup_compare(entry.configs, settings, SWEEP_BITS, uploads)
        if run is not None:
            runs[name] = run
        if sweep is not None:
            sweeps[name] = sweep
    model = model_cache.lookup_whole_model(configs, settings.seed)  # the tab's seed
    return {"compare_runs": runs or None, "compare_sweeps": sweeps or None, "model": model}


def _render_link(state: MutableMapping) -> None:
    try:
        params = encode_state(shared_state_of(state))
    except ShareError as err:
        st.warning(f"No link: {markdown_literal(str(err))}", icon="🔗")
        return
    token = params[PARAM]
    if st.query_params.get(PARAM) != token:
        st.query_params[PARAM] = token  # the address bar is always the current state's link
    st.caption("The address bar already holds this state's link. Or copy it here (the copy "
               "button sits at the right of the box):")
    st.code(link_url(getattr(st.context, "url", None), token), language=None,
            wrap_lines=False)  # one line that scrolls, not a 30-line block

