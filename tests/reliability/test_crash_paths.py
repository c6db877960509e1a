"""Inputs that used to crash a page (issue 13, item 4), driven through the session-state
callbacks the widgets call: each leaves a message for the page and the session usable.

- A deeply nested editor text, then any field widget: `yaml_edit` recursed past Python's
  stack limit (RecursionError escaped the callback).
- A ``.pt`` upload holding a meta or nested tensor: the float32 copy raised NotImplementedError
  / RuntimeError instead of an `UploadError`.
"""

from __future__ import annotations

import io
import time
import warnings

import pytest
import torch

from explorer.core import state as S
from explorer.data import panel as data_panel
from explorer.data import state as DS
from quantlib.config_loader import parse_section

DEEP_TEXTS = {
    "block-sequence-700": "observer_type: MinmaxObserver\nsteps:\n"
                          + "".join(" " * i + "-\n" for i in range(1, 700)),
    "block-mapping-900": "bit_type:\n  bits: 6\n"
                         + "".join(" " * i + f"n{i}:\n" for i in range(900)),
    "flow-list-2500": "kl_bins: " + "[" * 2500 + "]" * 2500 + "\n",
    "flow-map-1500": "bit_type: " + "{a: " * 1500 + "1" + "}" * 1500 + "\n",
    "mixed-1200": "observer_type: KLObserver\nx: " + "[{k: " * 600 + "1" + "}]" * 600 + "\n",
}
WIDGET_VALUES = {"observer_type": "PercentileObserver", "bits": 5, "signed": False,
                 "quantization_method": "Affine", "calibration_mode": "layer_wise",
                 "percentile_alpha": 0.999, "kl_bins": 512}


@pytest.fixture
def state() -> dict:
    state: dict = {}
    S.init_state(state)
    return state


@pytest.mark.parametrize("field", sorted(WIDGET_VALUES))
@pytest.mark.parametrize("case", sorted(DEEP_TEXTS))
def test_deep_editor_text_then_any_widget_keeps_the_session(state, case, field):
    text = DEEP_TEXTS[case]
    before = dict(state)
    state[S.text_key("weight")] = text
    start = time.perf_counter()
    S.on_text_change(state, "weight")  # the editor: the text is kept, the config refused
    config, error, _ = S.parse_text(state[S.store_key("weight")], "weight")
    assert config is None and error is not None  # the page shows this error under the editor
    state[S.field_key("weight", field)] = WIDGET_VALUES[field]
    S.on_field_change(state, "weight", field)  # used to raise RecursionError
    assert time.perf_counter() - start < 2.0
    stored = state[S.store_key("weight")]
    assert stored.count("\n") >= text.count("\n") - 1  # the user's text is never lost
    if stored == text:  # not rewritable: the notice says why
        assert "fix the YAML error first" in state[S.notice_key("weight")]
    # the other sections and the data settings are untouched
    assert state[S.store_key("outputs")] == before[S.store_key("outputs")]
    assert parse_section(state[S.store_key("outputs")], "outputs")


def _pt(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _nested() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nested tensors are in prototype stage"
        return torch.nested.nested_tensor([torch.ones(3, 4), torch.ones(1, 4)])


CRASHING_UPLOADS = {
    "meta-weight": ({"fc.weight": torch.empty(16, 8, device="meta")}, "meta tensor"),
    "meta-next-to-a-good-weight": ({"fc.weight": torch.ones(4, 8),
                                    "fc.bias": torch.empty(4, device="meta")}, "meta tensor"),
    "nested-weight": ({"fc.weight": _nested()}, "nested tensors are not accepted"),
    "nested-in-a-list": ({"layers": [torch.ones(2, 8), _nested()]}, "nested tensors"),
}


@pytest.mark.parametrize("kind", ["weight", "inputs"])
@pytest.mark.parametrize("case", sorted(CRASHING_UPLOADS))
def test_meta_or_nested_tensor_upload_shows_an_error_and_keeps_the_previous_data(state, case,
                                                                                 kind):
    assert data_panel.accept_weight_upload(state, "good.pt", _pt({"w": torch.ones(6, 8)}))
    good_digest = state[S.data_key("upload_weight")]
    payload, fragment = CRASHING_UPLOADS[case]
    accept = data_panel.accept_weight_upload if kind == "weight" else \
        data_panel.accept_input_upload
    assert accept(state, f"{case}.pt", _pt(payload)) is False  # used to raise
    error = state[DS.UPLOAD_WEIGHT_ERROR if kind == "weight" else DS.UPLOAD_INPUT_ERROR]
    assert fragment in error and f"{case}.pt" in error
    assert state[S.data_key("upload_weight")] == good_digest  # the previous weight stays
