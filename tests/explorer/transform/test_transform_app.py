"""AppTest of the transform panel (Single layer tab, below the results)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from explorer.core import cache
from explorer.core import state as S
from explorer.transform import state as T
from quantlib.config_loader import load_config_from_string
from tests.helpers import APP, SMALL_LAYER, TIMEOUT, chart_titles, open_app


@pytest.fixture(autouse=True)
def clear_caches():
    cache.clear_all()
    yield
    cache.clear_all()


def start_app(**data) -> AppTest:
    return open_app(state={T.OPEN: True}, **{**SMALL_LAYER, **data})  # the panel, open


def metric_labels(at: AppTest) -> list[str]:
    return [m.label for m in at.metric]


def test_closed_panel_computes_and_draws_nothing():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in SMALL_LAYER.items():
        at.session_state[S.data_key(name)] = value
    at.run()
    assert not at.exception
    assert not any(t.startswith("Difficulty migration") for t in chart_titles(at))


def test_panel_shows_migration_curve_and_before_after_metrics():
    at = start_app()
    shown = chart_titles(at)
    assert any(t.startswith("Difficulty migration") for t in shown)
    assert any(t.startswith("SmoothQuant: output QSNR vs alpha") for t in shown)
    # the default draft (SmoothQuant alpha 0.5) is previewed without touching the layer
    assert "Output QSNR (dB)" in metric_labels(at)
    assert "transform" not in S.document_text(at.session_state)


def test_switching_the_transform_on_puts_it_in_the_document_and_the_configs():
    at = start_app()
    at.toggle(key=S.TRANSFORM_ENABLED).set_value(True).run()
    assert not at.exception, at.exception
    doc = S.document_text(at.session_state)
    transform = load_config_from_string(doc)["transform"]
    assert transform is not None and transform.smoothquant.alpha == 0.5


def test_widgets_rewrite_the_yaml_and_bad_yaml_names_the_field():
    at = start_app()
    at.selectbox(key=T.ROTATION).set_value("hadamard").run()
    assert "rotation: hadamard" in at.session_state[T.TEXT]
    at.text_area(key=T.TEXT).set_value("gptq:\n  damp: 5\n").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("transform.gptq.damp" in e and "line 2" in e for e in errors), errors


def test_gptq_runs_on_the_button():
    at = start_app()
    at.selectbox(key=T.ALGORITHM).set_value("gptq").run()
    assert not at.exception, at.exception
    assert "Output QSNR (dB)" not in metric_labels(at)  # waits for the button
    at.button(key=T.RUN_GPTQ).click().run()
    assert not at.exception, at.exception
    assert "Output QSNR (dB)" in metric_labels(at)
