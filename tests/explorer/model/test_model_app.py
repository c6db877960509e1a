"""AppTest coverage of the MiniLM paths: the sidebar source and the Whole model tab's picker."""

from __future__ import annotations

import pytest

from explorer.core import cache
from explorer.core import state as S
from explorer.model import state as MS
from tests.helpers import chart_titles, open_app


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("QUANT_EXPLORER_MODEL_DIR", raising=False)
    cache.clear_all()
    yield
    cache.clear_all()


def test_minilm_source_quantizes_a_real_layer_with_real_activations():
    at = open_app(source="minilm", minilm_layer="encoder.layer.0.output.dense",
                  num_batches=2, batch_size=64)
    assert not at.exception and not at.error
    assert at.session_state[S.data_key("in_features")] == 1536
    assert any("real input tokens" in c.value for c in at.caption)


def test_whole_model_tab_runs_minilm_and_shows_outliers():
    at = open_app()
    at.session_state[S.TABS] = "Whole model"
    at.run()
    assert "MiniLM-L6 (all-MiniLM-L6-v2)" in at.radio(key=MS.MODEL_PICK).options
    at.radio(key=MS.MODEL_PICK).set_value("minilm").run()
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert "Mean cosine vs fp32" in labels and "Paraphrase retrieval" in labels
    assert any("input channels by absmax" in t for t in chart_titles(at))
    assert any("same channels in every block" in t for t in chart_titles(at))
    at.selectbox(key=MS.OUTLIER_LAYER).set_value("encoder.layer.0.output.dense").run()
    assert not at.exception
