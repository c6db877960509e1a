"""Session keys of the Teach tab and its scenario callback (no Streamlit).

A scenario loads configs and data through the same keys a preset
(`explorer.core.state.apply_document`) and the sample-data widgets use.
"""

from __future__ import annotations

from explorer.core.state import CONFIG_NOTICE, State, apply_document, set_data_settings
from explorer.teach.lessons import SCENARIOS

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


def init_teach_state(state: State) -> None:
    """Set the missing teaching keys to their defaults."""
    state.setdefault(TEACH_SCENARIO, None)
    state.setdefault(TEACH_PICK_NOTE, None)


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
