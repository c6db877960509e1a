"""The shared text helpers: no signed zero, no arrow for no change (issue 14)."""

from __future__ import annotations

import pytest

from explorer.core.formatting import delta_style, format_change, format_fixed


@pytest.mark.parametrize("value, digits, text", [
    (-0.001, 2, "0.00"), (0.004, 2, "0.00"), (-0.006, 2, "-0.01"), (3.14159, 2, "3.14"),
    (-0.04, 1, "0.0"), (-0.05, 1, "-0.1")],
    ids=["neg-tiny", "pos-tiny", "neg-rounds-away", "plain", "neg-1dp", "half-away"])
def test_format_fixed_never_writes_a_negative_zero(value, digits, text):
    assert format_fixed(value, digits) == text


def test_a_change_below_display_precision_is_no_change():
    assert format_change(-0.0, 1, "pp") == "0.0 pp"
    assert format_change(-0.04, 1, "pp") == "0.0 pp"
    assert delta_style(-0.04, 1) == {"delta_color": "off", "delta_arrow": "off"}
    assert format_change(-2.1, 1, "pp") == "-2.1 pp" and delta_style(-2.1, 1) == {}
    assert format_change(0.3, 2, "dB") == "+0.30 dB"
