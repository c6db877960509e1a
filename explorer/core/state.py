"""The shared session state: the config editors, presets and sample-data keys, and their callbacks.

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
import textwrap
import warnings
from collections.abc import MutableMapping
from dataclasses import fields
from pathlib import Path

import yaml

from explorer.core.format_fields import (  # noqa: F401 - FORMAT_CHOICES: the widget's options
    FORMAT_CHOICES,
    INT_FORMAT,
    default_block_size,
    format_edits,
)
from explorer.core.pipeline import DataSettings
from explorer.core.yaml_edit import get_field, join_document, set_field, split_document
from quantlib.config_loader import (
    MAX_CONFIG_BYTES,
    TRANSFORM,
    ConfigError,
    load_config_from_string,
    parse_section,
    section_to_yaml,
)
from quantlib.quant_config import QuantConfig

State = MutableMapping[str, object]

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs"
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
    "format": ("bit_type", "name"),
    "block_size": ("block_size",),
}
_DEFAULT_NAME = re.compile(r"^u?int\d+$")

# The config upload's one size limit, as every text shows it (uploader help, errors, docs).
CONFIG_UPLOAD_LIMIT = f"{MAX_CONFIG_BYTES // 1024} KiB"
CONFIG_UPLOAD_HELP = (f"A YAML config of at most {CONFIG_UPLOAD_LIMIT} (a real one is under "
                      "1 KiB), read with the config loader only. The box's own larger figure "
                      "is just the browser's transfer cap.")

# Plain keys (not widgets).
LAST_GOOD = "last_good_result"   # (PipelineResult, figures) of the last valid run
CONFIG_NOTICE = "config_notice"  # (level, message) from a preset/upload/field callback
# Widget keys.
PRESET = "preset"
UPLOAD = "config_upload"
DOWNLOAD = "config_download"
ACT_ENABLED = "activation_enabled"
DATA_FIELDS = tuple(f.name for f in fields(DataSettings))

TABS = "main_tabs"  # st.tabs: the open tab's label (lazy tabs)
# The document's optional transform: section (editor: explorer.transform): its body text in
# store_key(TRANSFORM), kept while off; in the document (and the configs) only when enabled.
TRANSFORM_ENABLED = "transform_enabled"
DEFAULT_TRANSFORM_YAML = "smoothquant: {alpha: 0.5}\nrotation: none\nweight_algorithm: rtn\n"


def set_data_settings(state: State, settings: DataSettings) -> None:
    """Move every sample-data widget to ``settings`` (call before the widgets are drawn)."""
    for name, value in settings.as_dict().items():
        state[data_key(name)] = value




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
    """The preset file names in ``configs/``, the default first, then the number-format
    presets of ``configs/formats/`` as ``formats/<name>.yaml``."""
    names = sorted(p.name for p in PRESET_DIR.glob("*.yaml"))
    formats = sorted(f"formats/{p.name}" for p in (PRESET_DIR / "formats").glob("*.yaml"))
    return sorted(names, key=lambda name: name != DEFAULT_PRESET) + formats


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
    state.setdefault(TRANSFORM_ENABLED, False)
    state.setdefault(store_key(TRANSFORM), DEFAULT_TRANSFORM_YAML)


def enabled_sections(state: State) -> tuple[str, ...]:
    return SECTIONS if state.get(ACT_ENABLED) else SECTIONS[:2]


def ensure_section_widgets(state: State, section: str, reopened: bool = False) -> None:
    """Re-seed a section's editor and field widgets when Streamlit dropped their state, or
    from its stored text when its tab is ``reopened`` (a hidden widget can keep a stale
    value: its edits went to the stored text while it was not drawn)."""
    if reopened or text_key(section) not in state:
        state[text_key(section)] = state[store_key(section)]
    if reopened or any(field_key(section, f) not in state for f in FIELD_PATHS):
        config = parse_text(state[store_key(section)], section)[0] or QuantConfig()
        for field, value in field_values(config).items():
            if reopened or field_key(section, field) not in state:
                state[field_key(section, field)] = value


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
        "format": config.bit_type.name if config.bit_type.is_float else INT_FORMAT,
        "block_size": config.block_size or default_block_size(config.bit_type.name),
    }



def document_text(state: State) -> str:
    """The current YAML document (all enabled sections), as the download button offers it."""
    bodies = {section: state[store_key(section)] for section in enabled_sections(state)}
    text = join_document(bodies, header="# Exported from the quantization explorer")
    if state.get(TRANSFORM_ENABLED) and state.get(store_key(TRANSFORM)):
        body = state[store_key(TRANSFORM)].rstrip("\n")
        text = text.rstrip("\n") + f"\n{TRANSFORM}:\n{textwrap.indent(body, '  ')}\n"
    return text


# --- callbacks ----------------------------------------------------------------------------


def on_text_change(state: State, section: str) -> None:
    """The YAML editor changed: store the text; if it parses, move the widgets to match.

    Like the Bits/Signed widgets, an edit of ``bits`` or ``signed`` renames a default-pattern
    ``bit_type.name`` (``int<b>``/``uint<b>``) to match (`sync_default_name`) when the
    result is a valid config; the rest of the text is kept, and a notice under the editor
    says what was adjusted. Invalid text (``bits: 99``) is kept exactly as typed."""
    text = state[text_key(section)]
    synced, adjusted = sync_default_name(text)
    if adjusted and parse_text(synced, section)[0] is not None:  # invalid text stays as typed
        text = synced
        state[text_key(section)] = text
        state[notice_key(section)] = adjusted
    state[store_key(section)] = text
    config = parse_text(text, section)[0]
    if config is not None:
        _set_fields(state, section, config)


def default_name(bits: int, signed: bool) -> str:
    """The default ``bit_type.name`` of a bit width: ``int8``, ``uint4``."""
    return f"{'int' if signed else 'uint'}{bits}"


def sync_default_name(text: str) -> tuple[str, str | None]:
    """``(text, message)`` with a default-pattern ``bit_type.name`` that contradicts
    ``bits``/``signed`` renamed to match (``bits: 4`` with ``name: int8`` -> ``name: int4``),
    every other line kept; ``(text, None)`` when nothing needed adjusting: a custom name, no
    name, or text whose bits/signed are not valid."""
    name = get_field(text, ("bit_type", "name"))
    bits_text = get_field(text, ("bit_type", "bits"))
    if name is None or bits_text is None or not _DEFAULT_NAME.match(name):
        return text, None
    signed_text = get_field(text, ("bit_type", "signed"))
    try:
        bits = int(bits_text)
    except ValueError:
        return text, None
    if signed_text is None:
        signed = QuantConfig().bit_type.signed
    elif signed_text.lower() in ("true", "false"):
        signed = signed_text.lower() == "true"
    else:
        return text, None
    wanted = default_name(bits, signed)
    if name == wanted:
        return text, None
    new_text = set_field(text, ("bit_type", "name"), wanted)
    if new_text is None:
        return text, None
    return new_text, (f"Adjusted `bit_type.name` from {name} to {wanted} to match bits: "
                      f"{bits}, signed: {'true' if signed else 'false'} (a custom name is "
                      "kept as typed).")


def on_field_change(state: State, section: str, field: str) -> None:
    """A field widget changed: rewrite that field in the section's YAML text.

    Format and Granularity also rewrite what they imply (`format_edits`), say so under the
    editor, and move the other widgets to the result."""
    text = state[store_key(section)]
    value = state[field_key(section, field)]
    if field == "percentile_alpha":
        value = round(float(value), 8)
    if field in ("format", "calibration_mode"):
        bits, signed = state[field_key(section, "bits")], state[field_key(section, "signed")]
        new_text, adjusted = format_edits(text, field, value, bits, signed)
        if new_text is not None:
            state[store_key(section)] = new_text
            state[text_key(section)] = new_text
            if adjusted:
                state[notice_key(section)] = adjusted
            config = parse_text(new_text, section)[0]
            if config is not None:
                _set_fields(state, section, config)
            return
        state[notice_key(section)] = (f"Could not apply {field} = {value!r} to the "
                                      f"{section} YAML; fix the YAML error first.")
        return
    new_text = set_field(text, FIELD_PATHS[field], value)
    if new_text is not None and field in ("bits", "signed"):
        name = get_field(new_text, ("bit_type", "name"))
        if name is not None and _DEFAULT_NAME.match(name):
            new_text = set_field(new_text, ("bit_type", "name"), default_name(
                state[field_key(section, "bits")], state[field_key(section, "signed")]))
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
                f"{CONFIG_UPLOAD_LIMIT} ({MAX_CONFIG_BYTES:,} bytes).")
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
    state[TRANSFORM_ENABLED] = configs[TRANSFORM] is not None
    if configs[TRANSFORM] is not None:
        state[store_key(TRANSFORM)] = bodies.get(TRANSFORM) or yaml.safe_dump(
            configs[TRANSFORM].to_dict(), sort_keys=False)
    return None


def _set_fields(state: State, section: str, config: QuantConfig) -> None:
    for field, value in field_values(config).items():
        state[field_key(section, field)] = value
