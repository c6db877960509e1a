"""Session keys of the Teach tab and its scenario callback (no Streamlit).

A scenario loads configs and data through the same keys a preset
(`explorer.core.state.apply_document`) and the sample-data widgets use.
"""

from __future__ import annotations

from explorer.core.state import PRESET, State, apply_document, set_data_settings
from explorer.teach.lessons import SCENARIOS, scenario_document

TEACH_SCENARIO = "teach.scenario"    # plain: name of the last loaded lessons.SCENARIOS entry
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
TEACH_NOTICE = "teach.notice"        # plain: (scenario, level, message) of the last Load click,
                                     # shown next to that scenario's button


def init_teach_state(state: State) -> None:
    """Set the missing teaching keys to their defaults."""
    state.setdefault(TEACH_SCENARIO, None)
    state.setdefault(TEACH_PICK_NOTE, None)
    state.setdefault(TEACH_NOTICE, None)


def on_scenario(state: State, name: str) -> None:
    """A scenario button: load its data and config A as a full, commented YAML document
    (`lessons.scenario_document`). The preset picker is cleared (the editors no longer hold
    a preset) and the confirmation goes next to the button (`TEACH_NOTICE`)."""
    scenario = SCENARIOS[name]
    error = apply_document(state, scenario_document(scenario))
    if error:  # the scenarios are tested to load; this guards against a bad edit to them
        state[TEACH_NOTICE] = (name, "error", f"Could not load this scenario: {error}")
        return
    set_data_settings(state, scenario.settings)
    state[PRESET] = None  # the picker shows its placeholder, not the preset loaded before
    state[TEACH_SCENARIO] = name
    state[TEACH_NOTICE] = (name, "success",
                           f"Loaded {scenario.title}: config A ({scenario.label_a}) is in the "
                           "editors, with the sidebar's data set for it. Predict, then open "
                           "the reveal.")
