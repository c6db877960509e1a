"""Every session-state key and default of the explorer, and the callbacks that change them.

Nothing here imports Streamlit: each function takes the session state as a mutable mapping
(``st.session_state`` in the app, a plain dict in tests).

The YAML text of each section lives in a plain key (`store_key`), the source of truth; the
editor widget (`text_key`) and the field widgets (`field_key`) mirror it. Widget state is
dropped by Streamlit when a widget is not drawn in a run (the activation section behind its
toggle), so `ensure_section_widgets` re-seeds missing widget keys from the stored text.

Sync rules:
- editing the YAML (`on_text_change`) stores the text and, when it parses, sets the fields;
- changing a field widget (`on_field_change`) rewrites that field's value in the YAML text,
  keeping comments and every other line (the field is appended when absent);
- a preset (`on_preset_change`) or an upload (`on_upload`) replaces all sections.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import MutableMapping
from dataclasses import fields
from pathlib import Path

from explorer import samples
from explorer.compare import classic_set
from explorer.pipeline import DataSettings
from explorer.teaching import SCENARIOS
from explorer.yaml_edit import get_field, join_document, set_field, split_document
from quantlib.config_loader import (
    MAX_CONFIG_BYTES,
    ConfigError,
    load_config_from_string,
    parse_section,
    section_to_yaml,
)
from quantlib.quant_config import QuantConfig

State = MutableMapping[str, object]

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_PRESET = "attn_config.yaml"

# Editor sections, by their YAML header, and the loader's result key for each.
SECTIONS = ("weight", "outputs", "activation")
RESULT_KEYS = {"weight": "weight", "outputs": "output", "activation": "activation"}
SECTION_TITLES = {"weight": "Weight", "outputs": "Output", "activation": "Input activation"}
DEFAULT_ACTIVATION_YAML = """\
calibration_mode: layer_wise
bit_type:
  bits: 8
  signed: true
  name: int8
observer_type: MinmaxObserver
quantization_method: Affine
enable_profiler: true
"""

# The common fields that get a widget, and where each lives in a section body.
FIELD_PATHS = {
    "observer_type": ("observer_type",),
    "bits": ("bit_type", "bits"),
    "signed": ("bit_type", "signed"),
    "quantization_method": ("quantization_method",),
    "calibration_mode": ("calibration_mode",),
    "percentile_alpha": ("percentile_alpha",),
    "kl_bins": ("kl_bins",),
}
_DEFAULT_NAME = re.compile(r"^u?int\d+$")

# Plain keys (not widgets).
LAST_GOOD = "last_good_result"   # (PipelineResult, figures) of the last valid run
CONFIG_NOTICE = "config_notice"  # (level, message) from a preset/upload/field callback
# Widget keys.
PRESET = "preset"
UPLOAD = "config_upload"
DOWNLOAD = "config_download"
ACT_ENABLED = "activation_enabled"
DATA_FIELDS = tuple(f.name for f in fields(DataSettings))

# --- real data / whole model ---------------------------------------------------------------
# The data source and layer pickers are `data_key` widgets like every DataSettings field
# (``data.source``, ``data.model_layer``, ``data.minilm_layer``, ``data.upload_tensor``);
# ``data.upload_weight`` / ``data.upload_inputs`` are plain keys holding upload digests. Parsed
# uploads stay in this session only (one weight file + one input file), never in a link.
TABS = "main_tabs"                           # st.tabs: the open tab's label (lazy tabs)
UPLOAD_WEIGHT_FILE = "upload.weight_file"    # file_uploader widget: a weight tensor file
UPLOAD_INPUT_FILE = "upload.input_file"      # file_uploader widget: calibration inputs
UPLOAD_WEIGHT = "upload.weight"              # UploadedTensors of the last good weight file
UPLOAD_INPUTS = "upload.inputs"              # UploadedTensors of the last good input file
UPLOAD_WEIGHT_ERROR = "upload.weight_error"  # message shown under the weight uploader
UPLOAD_INPUT_ERROR = "upload.input_error"    # message shown under the input uploader
MODEL_LAST_GOOD = "model.last_good"          # last valid WholeModelSummary (shown stale)
UPLOAD_FORGET_INPUTS = "upload.forget_inputs"  # button: drop the uploaded inputs
MODEL_COMPARE = "model.compare_presets"      # presets compared in "Whole model" (kept value)
MODEL_COMPARE_WIDGET = "model.compare_presets.widget"  # its multiselect (dropped when closed)
MODEL_SYNTHETIC_SHAPE = "model.synthetic_shape"  # (in, out) restored when back to synthetic
REAL_DATA_DEFAULTS = {UPLOAD_WEIGHT: None, UPLOAD_INPUTS: None, UPLOAD_WEIGHT_ERROR: None,
                      UPLOAD_INPUT_ERROR: None, MODEL_LAST_GOOD: None, MODEL_COMPARE: []}


def init_real_data_state(state: State) -> None:
    """Set the missing real-data / whole-model keys to their defaults."""
    for key, value in REAL_DATA_DEFAULTS.items():
        state.setdefault(key, list(value) if isinstance(value, list) else value)
# --- end real data / whole model -----------------------------------------------------------

# --- teaching / sharing --------------------------------------------------------------------
# The "Teach" tab (explorer.teach_panel) and the sidebar's share/export section
# (explorer.share_panel). A scenario or a link loads configs and data through the same keys a
# preset (`apply_document`) and the sample-data widgets use.
TEACH_SCENARIO = "teach.scenario"    # plain: name of the last loaded teaching.SCENARIOS entry
TEACH_TENSOR = "teach.tensor"        # radio: the tensor the decomposition panel shows
TEACH_CHANNEL = "teach.channel"      # number_input prefix: `teach.channel.<tensor>`, the
                                     # channel whose numbers the formula panel shows
TEACH_ROW = "teach.row"              # number_input: weight row followed through the quantizer
TEACH_COL = "teach.col"              # number_input: weight column followed
TEACH_PICK = "teach.pick"            # radio: a heatmap click picks a block's first/worst element
TEACH_HEATMAP = "teach.heatmap"      # plotly_chart selection: the clickable weight-error map
TEACH_PICK_NOTE = "teach.pick_note"  # plain: which element the last heatmap click picked
TEACH_LOAD = "teach.load"            # button prefix: `teach.load.<scenario>` loads it
TEACH_REVEAL = "teach.reveal"        # expander prefix: `teach.reveal.<scenario>` (lazy)
SHARE_LOADED = "share.loaded"        # plain: the link in the URL was read (once per session)
SHARE_NOTICE = "share.notice"        # plain: (level, message) about the link that was read
TEACH_SHARE_DEFAULTS = {TEACH_SCENARIO: None, TEACH_PICK_NOTE: None, SHARE_LOADED: False,
                        SHARE_NOTICE: None}


def init_teach_share_state(state: State) -> None:
    """Set the missing teaching / sharing keys to their defaults."""
    for key, value in TEACH_SHARE_DEFAULTS.items():
        state.setdefault(key, value)


def set_data_settings(state: State, settings: DataSettings) -> None:
    """Move every sample-data widget to ``settings`` (call before the widgets are drawn)."""
    for name, value in settings.as_dict().items():
        state[data_key(name)] = value


def on_scenario(state: State, name: str) -> None:
    """A scenario button: load its data and config A, as a preset would."""
    scenario = SCENARIOS[name]
    error = apply_document(state, scenario.config_a)
    if error:  # the scenarios are tested to load; this guards against a bad edit to them
        state[CONFIG_NOTICE] = ("error", f"Scenario {scenario.title}: {error}")
        return
    set_data_settings(state, scenario.settings)
    state[TEACH_SCENARIO] = name
    state[CONFIG_NOTICE] = ("success", f"Loaded scenario: {scenario.title} "
                                       f"(config A: {scenario.label_a}).")


def load_sections(state: State, bodies: dict[str, str | None], activation_enabled: bool,
                  settings: DataSettings) -> None:
    """Load already-validated section texts (a shared link) into the editors and widgets,
    keeping them verbatim (comments included); a None body keeps that editor's text."""
    for section in SECTIONS:
        text = bodies.get(section)
        if text is None:
            continue
        state[store_key(section)] = text
        state[text_key(section)] = text
        config = parse_text(text, section)[0]
        if config is not None:
            _set_fields(state, section, config)
    state[ACT_ENABLED] = bool(activation_enabled)
    set_data_settings(state, settings)
# --- end teaching / sharing ----------------------------------------------------------------

# --- compare view ---------------------------------------------------------------------------
# The "Compare" tab (explorer.compare_panel). Its configs live in the plain key COMPARE_ENTRIES,
# a tuple of (name, YAML document) pairs: the source of truth. The name/YAML widgets and the
# options mirror plain keys and are re-seeded from them when Streamlit dropped them (the tab is
# lazy: nothing in it is drawn while it is closed). The first visit seeds two copies of the
# current config.
COMPARE_ENTRIES = "compare.entries"    # plain: ((name, text), ...), 2 to 4 entries
COMPARE_OPTIONS = "compare.options"    # plain: {option widget key: value} (kept values)
COMPARE_NOTICE = "compare.notice"      # plain: (level, message) from a compare button
COMPARE_CLASSIC = "compare.classic"    # button: MinMax / Percentile / OMSE / KL copies
COMPARE_ADD = "compare.add"            # button: add a copy of the current config
COMPARE_RESET = "compare.reset"        # button: back to two copies of the current config
COMPARE_WIDE = "compare.sweep_16"      # toggle: add 16 bits to the bit-width sweep
COMPARE_SCOPE = "compare.scope"        # radio: curves/histograms of the whole tensor or a channel
COMPARE_CHANNEL = "compare.channel"    # number_input: that channel
COMPARE_NAME = "compare.name"          # text_input prefix: `compare.name.<i>`
COMPARE_YAML = "compare.yaml"          # text_area prefix: `compare.yaml.<i>`
COMPARE_REMOVE = "compare.remove"      # button prefix: `compare.remove.<i>`
COMPARE_SCOPES = ("Whole tensor", "One channel")
COMPARE_OPTION_DEFAULTS = {COMPARE_WIDE: False, COMPARE_SCOPE: COMPARE_SCOPES[0],
                           COMPARE_CHANNEL: 0}
COMPARE_LETTERS = "ABCD"


def compare_key(prefix: str, index: int) -> str:
    """Key of compare slot ``index``'s widget, e.g. ``compare.yaml.0``."""
    return f"{prefix}.{index}"


def current_document(state: State) -> str:
    """The single-layer editors' sections as one document (what a compare copy starts as)."""
    return join_document({s: state[store_key(s)] for s in enabled_sections(state)})


def init_compare_state(state: State) -> None:
    """Seed the compare keys on the first visit (two copies of the current config) and
    re-seed any widget Streamlit dropped while the tab was closed."""
    if COMPARE_ENTRIES not in state:
        document = current_document(state)
        state[COMPARE_ENTRIES] = (("A", document), ("B", document))
    state.setdefault(COMPARE_NOTICE, None)
    state.setdefault(COMPARE_OPTIONS, dict(COMPARE_OPTION_DEFAULTS))
    for key, value in state[COMPARE_OPTIONS].items():
        state.setdefault(key, value)
    for index, (name, text) in enumerate(state[COMPARE_ENTRIES]):
        state.setdefault(compare_key(COMPARE_NAME, index), name)
        state.setdefault(compare_key(COMPARE_YAML, index), text)


def set_compare_entries(state: State, entries) -> None:
    """Replace every compare slot (names and texts), widgets included."""
    entries = tuple((str(name), str(text)) for name, text in entries)
    state[COMPARE_ENTRIES] = entries
    for index in range(len(COMPARE_LETTERS)):
        for prefix, value in ((COMPARE_NAME, 0), (COMPARE_YAML, 1)):
            key = compare_key(prefix, index)
            if index < len(entries):
                state[key] = entries[index][value]
            elif key in state:
                del state[key]


def on_compare_edit(state: State, index: int) -> None:
    """A compare slot's name or YAML changed: store it."""
    entries = list(state[COMPARE_ENTRIES])
    entries[index] = (state[compare_key(COMPARE_NAME, index)],
                      state[compare_key(COMPARE_YAML, index)])
    state[COMPARE_ENTRIES] = tuple(entries)


def on_compare_option(state: State, key: str) -> None:
    """A compare option widget changed: keep its value."""
    state[COMPARE_OPTIONS] = {**state[COMPARE_OPTIONS], key: state[key]}


def on_compare_classic(state: State) -> None:
    """Load MinMax / Percentile / OMSE / KL copies of the current config."""
    try:
        entries = classic_set(current_document(state))
    except ConfigError as err:
        state[COMPARE_NOTICE] = ("error", "The classic set copies the Single layer config, "
                                          f"which has an error: {err}")
        return
    set_compare_entries(state, entries)
    state[COMPARE_NOTICE] = ("success", "Loaded the classic set: the current config with each "
                                        "of MinMax, Percentile, OMSE and KL as the weight and "
                                        "output observer.")


def on_compare_add(state: State) -> None:
    """Add a copy of the current config (at most four)."""
    entries = list(state[COMPARE_ENTRIES])
    if len(entries) >= len(COMPARE_LETTERS):
        return
    names = {name for name, _ in entries}
    name = next(letter for letter in COMPARE_LETTERS + "EFGH" if letter not in names)
    set_compare_entries(state, [*entries, (name, current_document(state))])


def on_compare_remove(state: State, index: int) -> None:
    """Remove compare slot ``index`` (at least two stay)."""
    entries = list(state[COMPARE_ENTRIES])
    if len(entries) > 2:
        del entries[index]
        set_compare_entries(state, entries)


def on_compare_reset(state: State) -> None:
    """Back to two copies (A, B) of the current config."""
    document = current_document(state)
    set_compare_entries(state, [("A", document), ("B", document)])
# --- end compare view -----------------------------------------------------------------------


def keep_last_good(state: State, key: str, fresh):
    """``(fresh, False)`` after remembering it under ``key``; when ``fresh`` is None (an
    invalid config) ``(the last good value, True)``: shown, marked stale."""
    if fresh is None:
        return state.get(key), True
    state[key] = fresh
    return fresh, False


def store_key(section: str) -> str:
    """Plain key holding a section's YAML text (the source of truth)."""
    return f"yaml_text.{section}"


def text_key(section: str) -> str:
    """Key of a section's YAML editor (text_area)."""
    return f"{section}.yaml"


def field_key(section: str, field: str) -> str:
    """Key of a section's field widget, e.g. ``weight.bits``."""
    return f"{section}.{field}"


def notice_key(section: str) -> str:
    """Plain key of a one-off message shown under a section's editor."""
    return f"notice.{section}"


def data_key(field: str) -> str:
    """Key of a sample-data widget, e.g. ``data.seed``."""
    return f"data.{field}"


def preset_names() -> list[str]:
    """The preset file names in ``configs/``, the default first."""
    names = sorted(p.name for p in PRESET_DIR.glob("*.yaml"))
    return sorted(names, key=lambda name: name != DEFAULT_PRESET)


def init_state(state: State) -> None:
    """Set every key that is missing to its default (the default preset and sample data)."""
    if store_key("weight") not in state:
        state[store_key("activation")] = DEFAULT_ACTIVATION_YAML
        state[ACT_ENABLED] = False
        state[PRESET] = DEFAULT_PRESET
        apply_document(state, (PRESET_DIR / DEFAULT_PRESET).read_text(encoding="utf-8"))
    for name, value in DataSettings().as_dict().items():
        state.setdefault(data_key(name), value)
    state.setdefault(LAST_GOOD, None)
    state.setdefault(CONFIG_NOTICE, None)
    for section in SECTIONS:
        state.setdefault(notice_key(section), None)
    state.setdefault(ACT_ENABLED, False)
    state.setdefault(PRESET, DEFAULT_PRESET)
    init_real_data_state(state)
    init_teach_share_state(state)


def enabled_sections(state: State) -> tuple[str, ...]:
    return SECTIONS if state.get(ACT_ENABLED) else SECTIONS[:2]


def ensure_section_widgets(state: State, section: str) -> None:
    """Re-seed a section's editor and field widgets when Streamlit dropped their state."""
    if text_key(section) not in state:
        state[text_key(section)] = state[store_key(section)]
    if any(field_key(section, f) not in state for f in FIELD_PATHS):
        config = parse_text(state[store_key(section)], section)[0] or QuantConfig()
        for field, value in field_values(config).items():
            state.setdefault(field_key(section, field), value)


def data_settings(state: State) -> DataSettings:
    """The sample-data settings the sidebar widgets hold."""
    return DataSettings(**{name: state[data_key(name)] for name in DATA_FIELDS})


def parse_text(text: str, section: str) -> tuple[QuantConfig | None, ConfigError | None,
                                                  list[str]]:
    """Parse one section body -> ``(config or None, error or None, warning messages)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            config = parse_section(text, section)
        except ConfigError as err:
            return None, err, []
    return config, None, [str(w.message) for w in caught]


def field_values(config: QuantConfig) -> dict[str, object]:
    """The widget values that show ``config``."""
    return {
        "observer_type": config.observer_type,
        "bits": config.bit_type.bits,
        "signed": config.bit_type.signed,
        "quantization_method": config.quantization_method,
        "calibration_mode": config.calibration_mode,
        "percentile_alpha": config.percentile_alpha,
        "kl_bins": config.kl_bins,
    }


def document_text(state: State) -> str:
    """The current YAML document (all enabled sections), as the download button offers it."""
    bodies = {section: state[store_key(section)] for section in enabled_sections(state)}
    return join_document(bodies, header="# Exported from the quantization explorer")


# --- callbacks ----------------------------------------------------------------------------


def on_text_change(state: State, section: str) -> None:
    """The YAML editor changed: store the text; if it parses, move the widgets to match."""
    text = state[text_key(section)]
    state[store_key(section)] = text
    config = parse_text(text, section)[0]
    if config is not None:
        _set_fields(state, section, config)


def on_field_change(state: State, section: str, field: str) -> None:
    """A field widget changed: rewrite that field in the section's YAML text."""
    text = state[store_key(section)]
    value = state[field_key(section, field)]
    if field == "percentile_alpha":
        value = round(float(value), 8)
    new_text = set_field(text, FIELD_PATHS[field], value)
    if new_text is not None and field in ("bits", "signed"):
        name = get_field(new_text, ("bit_type", "name"))
        if name is not None and _DEFAULT_NAME.match(name):
            bits = state[field_key(section, "bits")]
            signed = state[field_key(section, "signed")]
            new_text = set_field(new_text, ("bit_type", "name"),
                                 f"{'int' if signed else 'uint'}{bits}")
    if new_text is None:
        state[notice_key(section)] = (f"Could not apply {field} = {value!r} to the "
                                      f"{section} YAML; fix the YAML error first.")
        return
    state[store_key(section)] = new_text
    state[text_key(section)] = new_text


def on_preset_change(state: State) -> None:
    """The preset picker changed: load that file into every editor."""
    name = state[PRESET]
    path = PRESET_DIR / name
    error = apply_document(state, path.read_text(encoding="utf-8"))
    state[CONFIG_NOTICE] = (("error", f"Preset {name}: {error}") if error
                            else ("success", f"Loaded preset {name}."))


def on_upload(state: State) -> None:
    """A YAML file was uploaded: check its size, parse it with the loader, load it."""
    upload = state.get(UPLOAD)
    if upload is None:
        return
    state[CONFIG_NOTICE] = load_upload(state, upload.name, upload.getvalue())


def load_upload(state: State, name: str, data: bytes) -> tuple[str, str]:
    """Load an uploaded config file's bytes; returns the (level, message) notice."""
    if len(data) > MAX_CONFIG_BYTES:
        return ("error", f"{name} is {len(data):,} bytes; a config may be at most "
                f"{MAX_CONFIG_BYTES:,} bytes.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "error", f"{name} is not UTF-8 text; upload a YAML config file."
    error = apply_document(state, text)
    if error:
        return "error", f"{name}: {error}"
    return "success", f"Loaded {name}."


def apply_document(state: State, text: str) -> str | None:
    """Validate a whole document with the loader and, if valid, load it into every section.

    Returns the error message (and changes nothing) when the document is invalid.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            configs = load_config_from_string(text)
    except ConfigError as err:
        return str(err)
    bodies = split_document(text)
    for section in SECTIONS:
        config = configs[RESULT_KEYS[section]]
        if config is None:
            continue
        body = bodies.get(section)
        if body is None or parse_text(body, section)[0] != config:
            body = section_to_yaml(config)  # unusual layout: rebuild from the parsed values
        state[store_key(section)] = body
        state[text_key(section)] = body
        _set_fields(state, section, config)
    state[ACT_ENABLED] = configs["activation"] is not None
    return None


def _set_fields(state: State, section: str, config: QuantConfig) -> None:
    for field, value in field_values(config).items():
        state[field_key(section, field)] = value


def data_limits() -> dict[str, tuple[int, int]]:
    """Allowed ranges of the numeric sample-data widgets."""
    return {
        "in_features": (1, samples.MAX_FEATURES),
        "out_features": (1, samples.MAX_FEATURES),
        "num_batches": (1, samples.MAX_BATCHES),
        "batch_size": (1, samples.MAX_BATCH_ROWS),
        "seed": (0, 2**31 - 1),
    }
