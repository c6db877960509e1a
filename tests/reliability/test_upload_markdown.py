"""Uploaded file names and tensor names reach the page only as literal text: the sidebar's
errors and captions escape Markdown, so a file called ``![x](http://...).npy`` cannot make
the page fetch an image, show a link, or format the message."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from explorer.core import state as S
from explorer.data import panel as data_panel
from tests.helpers import npy_bytes

HOSTILE_NAMES = [
    "![pixel](https://example.invalid/p.png).npy",
    "[click me](javascript:alert(1)).npy",
    "**loud** _name_ $x^2$ :red[alert] <b>b</b> `code`.npy",
]
# Markdown an unescaped name would start: an image, a link, emphasis, LaTeX, a colour directive
LIVE_MARKDOWN = re.compile(r"(?<!\\)(!\[|\]\(|\*\*|(?<![\\\w])_|\$|:red\[|`)")


class Recorder:
    """Stands in for ``streamlit``: records the text of every element call."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name):
        def element(*args, **kwargs):
            if args and isinstance(args[0], str):
                self.calls.append((name, args[0]))
            return None
        return element


@pytest.fixture
def page(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(data_panel, "st", recorder)
    state: dict = {}
    S.init_state(state)
    state[S.data_key("source")] = "upload"
    return state, recorder


def _texts(recorder: Recorder, kinds=("error", "caption")) -> list[str]:
    return [text for kind, text in recorder.calls if kind in kinds]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_in_upload_errors_are_literal(page, name):
    state, recorder = page
    assert not data_panel.accept_weight_upload(state, name, b"\x93NUMPY garbage")
    assert not data_panel.accept_input_upload(state, name, b"\x93NUMPY garbage")
    data_panel._render_upload(state)
    errors = _texts(recorder, ("error",))
    assert len(errors) == 2
    for text in errors:
        assert not LIVE_MARKDOWN.search(text), text
        assert re.sub(r"\\(.)", r"\1", text).count(name) == 1  # the name, as written


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_names_in_captions_are_literal(page, name):
    state, recorder = page
    weight = np.ones((6, 4), dtype=np.float32)
    assert data_panel.accept_weight_upload(state, name, npy_bytes(weight))
    assert data_panel.accept_input_upload(state, name.replace(".npy", "_in.npy"),
                                          npy_bytes(np.ones((5, 4), dtype=np.float32)))
    data_panel._render_upload(state)
    captions = _texts(recorder, ("caption",))
    assert len(captions) == 2
    for text in captions:
        assert not LIVE_MARKDOWN.search(text), text


def test_tensor_names_in_upload_errors_are_literal(page):
    state, recorder = page
    evil = "![t](https://example.invalid/t.png)"
    data = save_safetensors({evil: torch.ones(3)})  # 1-D: refused, and the name is listed
    assert not data_panel.accept_weight_upload(state, "w.safetensors", data)
    assert not data_panel.accept_weight_upload(state, "w.pt", _pt({evil: torch.ones(3)}))
    data_panel._render_upload(state)
    (text,) = _texts(recorder, ("error",))
    assert evil[:10] in re.sub(r"\\(.)", r"\1", text) and not LIVE_MARKDOWN.search(text), text


def _pt(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
