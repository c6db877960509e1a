"""Helpers shared by the test suites: an AppTest session of app.py, link tokens, .npy bytes."""

from __future__ import annotations

import base64
import io
import json
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from explorer.core import state as S
from explorer.single import state as SINGLE

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


SMALL_LAYER = {"in_features": 96, "out_features": 64, "batch_size": 64, "num_batches": 4}


def open_app(token: str | None = None, state: dict | None = None, **data) -> AppTest:
    """A new session, run once: opened with ``?s=<token>`` when given; ``state`` presets
    session keys and ``data`` the sample-data widgets (e.g. ``**SMALL_LAYER``)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if token is not None:
        at.query_params["s"] = token
    for key, value in (state or {}).items():
        at.session_state[key] = value
    for name, value in data.items():
        at.session_state[S.data_key(name)] = value
    at.run()
    assert not at.exception, at.exception
    return at


def link_token(text: str) -> str:
    """``text`` encoded as a link's ``?s=`` value (zlib + base64url), valid or not."""
    return base64.urlsafe_b64encode(zlib.compress(text.encode())).decode().rstrip("=")


def npy_bytes(array) -> bytes:
    """``array`` saved as a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def npy_upload(name: str, array) -> tuple[str, bytes, str]:
    """A file_uploader value: (name, .npy bytes, mime type)."""
    return name, npy_bytes(array), "application/octet-stream"


def chart_specs(at: AppTest) -> list[tuple[str | None, dict]]:
    """``(key, figure)`` of every chart on the page: `st.plotly_chart`'s, then the Single
    layer results' live charts (`explorer.core.live_chart`)."""
    charts = []
    for element in at.get("plotly_chart") + at.get("bidi_component"):
        if element.type == "plotly_chart":
            charts.append((element.key, json.loads(element.proto.spec)))
        elif element.proto.component_name == "explorer.live_chart":
            charts.append((element.key, json.loads(json.loads(element.proto.json)["figure"])))
    return charts


def chart_titles(at: AppTest) -> list[str]:
    return [figure["layout"]["title"]["text"] for _, figure in chart_specs(at)]


def open_section(at: AppTest, section: str) -> AppTest:
    """Show ``section``'s config editor (only the chosen section's is drawn)."""
    if S.text_key(section) not in [area.key for area in at.text_area]:
        at.segmented_control(key=SINGLE.EDITOR_SECTION).set_value(section).run()
    return at


@dataclass(frozen=True)
class MetricCard:
    label: str
    value: str
    delta: str | None


class _CardParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cards: list[MetricCard] = []

    def handle_starttag(self, tag, attrs) -> None:
        found = dict(attrs)
        if "data-label" in found:
            self.cards.append(MetricCard(found["data-label"], found["data-value"],
                                         found.get("data-delta")))


def parse_metric_cards(text: str) -> list[MetricCard]:
    """The cards in `explorer.single.metrics.cards_html` output, from their data attributes."""
    parser = _CardParser()
    parser.feed(text)
    return parser.cards


def metric_cards(at: AppTest) -> list[MetricCard]:
    """The Single layer tab's metric cards (one `st.html` element)."""
    return [card for element in at.get("html") for card in parse_metric_cards(element.value)]
