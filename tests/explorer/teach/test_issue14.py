"""Issue 14 in the Teach tab's logic: formulas that wrap, full commented scenario YAML, and a
scenario load that confirms by its button and clears the preset picker."""

from __future__ import annotations

import re

import pytest
import torch

from explorer.core import state as S
from explorer.teach import state as TS
from explorer.teach.lessons import SCENARIOS, formula_lines, scenario_document
from quantlib.bit_type import BitType
from quantlib.config_loader import load_config_from_string
from quantlib.quant_config import QuantConfig

MAX_ROW_CHARS = 34  # a row's LaTeX without markup: fits a half column at 1024 px


def _row_text(row: str) -> str:
    """A LaTeX row's visible characters, roughly (commands and braces dropped)."""
    row = re.sub(r"\\(text|mathrm)\{([^}]*)\}", r"\2", row)
    row = re.sub(r"\\frac\{([^}]*)\}\{([^}]*)\}", lambda m: max(m.groups(), key=len), row)
    return re.sub(r"\\[a-zA-Z]+|[{}&_^]|\\[,;! ]", "", row)


@pytest.mark.parametrize("method", ["Uniform", "Affine"])
def test_formulas_are_stacked_short_rows(method):
    cfg = QuantConfig(bit_type=BitType(8, False), quantization_method=method)
    lines = formula_lines(cfg, torch.tensor([0.000123456]), torch.tensor([128]),
                          torch.tensor([-1.23456789]), torch.tensor([2.3456789]))["latex"]
    assert sum(line.startswith(r"\begin{aligned}") for line in lines) >= 4
    for line in lines:
        body = line.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}")
        for row in body.split(r" \\ "):
            assert len(_row_text(row)) <= MAX_ROW_CHARS, row


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_document_is_config_a_written_out_with_comments(name):
    scenario = SCENARIOS[name]
    text = scenario_document(scenario)
    assert load_config_from_string(text) == load_config_from_string(scenario.config_a)
    assert text.count("observer_type:") >= 2 and "# Scenario: " in text
    assert "# B: " in text  # the setting under test is marked with B's value


def test_load_confirms_by_the_button_and_clears_the_preset():
    state: dict = {}
    S.init_state(state)
    TS.init_teach_state(state)
    state[S.CONFIG_NOTICE] = None
    TS.on_scenario(state, "omse_4bit")
    assert state[S.PRESET] is None
    assert state[S.CONFIG_NOTICE] is None  # nothing at the top of the sidebar
    where, level, message = state[TS.TEACH_NOTICE]
    assert (where, level) == ("omse_4bit", "success") and SCENARIOS[where].title in message
    weight = state[S.store_key("weight")]
    assert weight.startswith("# Scenario: ") and "# B: OmseObserver" in weight
