"""Opening app.py in a fresh AppTest session, shared by the AppTest suites."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer import state as S

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 180


def open_app(token: str | None = None, **data) -> AppTest:
    """A new session, run once: opened with ``?s=<token>`` when given; ``data`` presets the
    sample-data widgets (e.g. a small layer)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if token is not None:
        at.query_params["s"] = token
    for name, value in data.items():
        at.session_state[S.data_key(name)] = value
    at.run()
    assert not at.exception, at.exception
    return at
