"""Every bound a field widget offers is a value the config accepts: a user who drags a widget
to its end must not get an error for a value the app itself offered."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from explorer.core import state as S

PANEL = Path(__file__).resolve().parents[2] / "explorer" / "single" / "panel.py"


def _number_inputs() -> dict[str, dict[str, float]]:
    """``{field: {"min_value": .., "max_value": ..}}`` for the sidebar's number_input calls
    whose label is ``FIELD_LABELS[<field>]`` and whose bounds are literals."""
    found = {}
    for node in ast.walk(ast.parse(PANEL.read_text())):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "number_input"
                and node.args and isinstance(node.args[0], ast.Subscript)):
            continue
        label = node.args[0].slice
        if not isinstance(label, ast.Constant):
            continue
        bounds = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords
                  if kw.arg in ("min_value", "max_value")}
        found[label.value] = bounds
    return found


BOUNDS = _number_inputs()


def test_the_field_widgets_were_found():
    assert {"bits", "percentile_alpha", "kl_bins"} <= set(BOUNDS)


@pytest.mark.parametrize("end", ["min_value", "max_value"])
@pytest.mark.parametrize("field", ["bits", "percentile_alpha", "kl_bins"])
def test_widget_ends_are_values_the_config_accepts(field, end):
    state: dict = {}
    S.init_state(state)
    if field == "percentile_alpha":
        state[S.field_key("outputs", "observer_type")] = "PercentileObserver"
        S.on_field_change(state, "outputs", "observer_type")
    state[S.field_key("outputs", field)] = BOUNDS[field][end]
    S.on_field_change(state, "outputs", field)
    config, error, _ = S.parse_text(state[S.store_key("outputs")], "outputs")
    assert error is None, error
    assert S.field_values(config)[field] == pytest.approx(BOUNDS[field][end], abs=1e-8)
