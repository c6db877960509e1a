"""AppTest: each number format picked from the Format widget renders its grid and block view."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.core import cache
from explorer.core import state as S
from explorer.single import state as SINGLE
from quantlib.bit_type import BitType
from quantlib.formats.grid import signed_grid
from tests.helpers import chart_specs, open_app

SMALL_LAYER = {"in_features": 96, "out_features": 64, "batch_size": 64, "num_batches": 2}
FLOAT_FORMATS = [name for name in S.FORMAT_CHOICES if name != S.INT_FORMAT]


@pytest.fixture(autouse=True)
def clear_caches():
    cache.clear_all()
    yield
    cache.clear_all()


def start_app() -> AppTest:
    return open_app(**SMALL_LAYER)


def figures(at: AppTest) -> dict[str, dict]:
    return {key.removeprefix("chart."): figure for key, figure in chart_specs(at)
            if (key or "").startswith("chart.")}


@pytest.mark.parametrize("name", FLOAT_FORMATS)
def test_picking_a_format_draws_its_grid_and_block_view(name):
    at = start_app()
    at.selectbox(key=S.field_key("weight", "format")).set_value(name).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = at.session_state[S.store_key("weight")]
    assert f"name: {name}" in text and "bits:" not in text  # derived, so dropped
    assert at.number_input(key=S.field_key("weight", "bits")).disabled
    config = S.parse_text(text, "weight")[0]
    assert config is not None and config.bit_type.name == name
    result = at.session_state[S.LAST_GOOD][0]
    weight = result.tensors["weight"]
    # The histogram's grey lines are the format's grid: element_levels x one scale.
    elements = signed_grid(BitType(name=name).format).double()
    levels = weight.levels.double()
    assert levels.numel() == elements.numel()
    unit = levels.max() / elements.max()
    torch.testing.assert_close(levels, elements * unit)
    drawn = [s["x0"] for s in figures(at)["weight_histogram"]["layout"]["shapes"]
             if s.get("name") == "quantization level"]
    assert len(drawn) == min(elements.numel(), 64)
    # Block view: block_wise formats draw one scale per block.
    at.session_state[SINGLE.RESULT_VIEW] = "Block scales"
    at.run()
    assert not at.exception, at.exception
    if config.is_block_wise:
        heat = figures(at)["weight_scales"]
        rows = len(heat["data"][0]["y"]["bdata"]) if isinstance(heat["data"][0]["y"], dict) \
            else len(heat["data"][0]["y"])
        assert rows > 0
        assert weight.block_scales.shape == (64, 96 // config.block_size)
    else:
        assert any("No tensor is block_wise" in i.value for i in at.info)


def test_block_size_widget_follows_granularity_and_back_to_int():
    at = start_app()
    block = at.number_input(key=S.field_key("weight", "block_size"))
    assert block.disabled
    at.selectbox(key=S.field_key("weight", "calibration_mode")).set_value("block_wise").run()
    assert not at.exception and not at.error
    assert not at.number_input(key=S.field_key("weight", "block_size")).disabled
    assert "block_size: 32" in at.session_state[S.store_key("weight")]
    at.number_input(key=S.field_key("weight", "block_size")).set_value(16).run()
    assert "block_size: 16" in at.session_state[S.store_key("weight")]
    at.selectbox(key=S.field_key("weight", "format")).set_value("mxfp4").run()
    assert "block_size: 32" in at.session_state[S.store_key("weight")]
    at.selectbox(key=S.field_key("weight", "format")).set_value("int").run()
    assert not at.exception and not at.error
    config = S.parse_text(at.session_state[S.store_key("weight")], "weight")[0]
    assert config.bit_type.name == "int4" and config.bit_type.bits == 4


def test_format_presets_are_offered_and_load():
    at = start_app()
    assert "formats/nvfp4.yaml" in at.selectbox(key=S.PRESET).options
    at.selectbox(key=S.PRESET).set_value("formats/nvfp4.yaml").run()
    assert not at.exception and not at.error
    assert at.selectbox(key=S.field_key("weight", "format")).value == "nvfp4"
