"""Session keys of the Compare tab and the callbacks that change them (no Streamlit).

Its configs live in the plain key `COMPARE_ENTRIES`, a tuple of (name, YAML document) pairs:
the source of truth. The name/YAML widgets and the options mirror plain keys and are re-seeded
from them when Streamlit dropped them (the tab is lazy: nothing in it is drawn while it is
closed). The first visit seeds A = the current config and B = A with other observers
(`runs.ab_pair`), so no curve of B hides A's.
"""

from __future__ import annotations

from explorer.compare.formats import FORMAT_SETS
from explorer.compare.runs import ab_pair, classic_set
from explorer.core.state import State, enabled_sections, store_key
from explorer.core.yaml_edit import join_document
from quantlib.errors import ConfigError

COMPARE_ENTRIES = "compare.entries"    # plain: ((name, text), ...), 2 to 4 entries
COMPARE_OPTIONS = "compare.options"    # plain: {option widget key: value} (kept values)
COMPARE_NOTICE = "compare.notice"      # plain: (level, message) from a compare button
COMPARE_CLASSIC = "compare.classic"    # button: MinMax / Percentile / OMSE / KL copies
COMPARE_FORMAT_SET = "compare.format_set"  # button prefix: `compare.format_set.<i>`
COMPARE_ADD = "compare.add"            # button: add a copy of the current config
COMPARE_RESET = "compare.reset"        # button: back to A (current config) and B (A with
                                       # other observers)
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
        entries, note = ab_pair(current_document(state))
        state[COMPARE_ENTRIES] = tuple(entries)
        state[COMPARE_NOTICE] = ("info", note)
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
    """Back to A (the current config) and B (A with other observers), and say so."""
    entries, note = ab_pair(current_document(state))
    set_compare_entries(state, entries)
    state[COMPARE_NOTICE] = ("info", note)


def on_compare_format_set(state: State, name: str) -> None:
    """Load the number-format set ``name`` (`formats.FORMAT_SETS`): fixed documents, the same
    layer and data as every comparison."""
    set_compare_entries(state, FORMAT_SETS[name])
    names = ", ".join(entry for entry, _ in FORMAT_SETS[name])
    state[COMPARE_NOTICE] = ("success", f"Loaded the {name} set: {names}.")
