"""Drive app.py with Streamlit's AppTest: widgets by key, caches cleared between tests."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer import cache
from explorer import state as S
from explorer.panels import format_config_error, format_metric, format_qsnr
from quantlib.config_loader import ConfigError
from quantlib.quant_config import OBSERVER_TYPES

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 180
SMALL_LAYER = {"in_features": 96, "out_features": 64, "batch_size": 64, "num_batches": 4}
FINITE_DB = re.compile(r"-?\d+\.\d\d dB")


@pytest.fixture(autouse=True)
def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def start_app(**data) -> AppTest:
    """Run the app once; ``data`` presets sample-data widgets (e.g. a small layer)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in data.items():
        at.session_state[S.data_key(name)] = value
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def _warm_torch():
    """One throwaway run so torch's first-call warm-up is not charged to a single test."""
    start_app(**SMALL_LAYER)


@pytest.fixture
def app(_warm_torch) -> AppTest:
    return start_app()


@pytest.fixture
def small_app(_warm_torch) -> AppTest:
    return start_app(**SMALL_LAYER)


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"expected one metric {label!r}, got {[m.label for m in at.metric]}"
    return values[0]


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"]
            for chart in at.get("plotly_chart")]


def yaml_text(at: AppTest, section: str) -> str:
    return at.text_area(key=S.text_key(section)).value


def edit_yaml(at: AppTest, section: str, text: str) -> AppTest:
    at.text_area(key=S.text_key(section)).input(text).run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def is_stale(at: AppTest) -> bool:
    return any("Stale results" in w.value for w in at.warning)


# --- default page ------------------------------------------------------------------------


def test_default_page_shows_every_plot_and_metric_without_clicks(app):
    titles = chart_titles(app)
    assert len(titles) >= 4
    for expected in ("Weight values", "Output values", "Weight quantization error",
                     "Output quantization error", "Weight: per-channel", "Output: per-channel",
                     "Time per stage", "Memory"):
        assert any(title.startswith(expected) for title in titles), (expected, titles)
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(app, f"{tensor} QSNR"))
        assert metric(app, f"{tensor} compression").endswith("×")
    assert not any("nan" in m.value.lower() for m in app.metric)
    assert not errors(app) and not is_stale(app)
    # The editors hold configs/attn_config.yaml and the widgets agree with them.
    assert "observer_type: MinmaxObserver" in yaml_text(app, "weight")
    assert "observer_type: PercentileObserver" in yaml_text(app, "outputs")
    assert app.selectbox(key="outputs.observer_type").value == "PercentileObserver"
    assert app.number_input(key="weight.bits").value == 8
    assert app.toggle(key="outputs.signed").value is False


# --- YAML edits --------------------------------------------------------------------------


def test_valid_yaml_edit_of_weight_bits_changes_the_weight_qsnr(app):
    before = metric(app, "Weight QSNR")
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("bits: 8", "bits: 4"))
    after = metric(app, "Weight QSNR")
    assert FINITE_DB.fullmatch(after) and after != before
    assert float(after.split()[0]) < float(before.split()[0]) - 15  # ~6 dB per bit
    assert app.number_input(key="weight.bits").value == 4  # YAML -> widget
    assert not errors(app) and not is_stale(app)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("bits: 8", "bits: 99", ["weight.bit_type.bits", "line 4", "from 2 to 16"]),
        ("MinmaxObserver", "MinMax", ["weight.observer_type", "line 7", "MinmaxObserver",
                                      "KLObserver"]),
        ("channel_wise", "per_channel", ["weight.calibration_mode", "line 2", "layer_wise"]),
        ("bits: 8", "bits: [8", ["invalid YAML", "line"]),
    ],
    ids=["bits-out-of-range", "unknown-observer", "unknown-granularity", "broken-yaml"],
)
def test_invalid_yaml_shows_inline_error_and_keeps_results_and_text(app, old, new, expected):
    charts_before = chart_titles(app)
    qsnr_before = metric(app, "Weight QSNR")
    bad_text = yaml_text(app, "weight").replace(old, new)
    edit_yaml(app, "weight", bad_text)
    (message,) = errors(app)
    for part in expected:
        assert part in message, (part, message)
    assert "Traceback" not in message
    assert is_stale(app)
    assert chart_titles(app) == charts_before  # last good results stay on screen
    assert metric(app, "Weight QSNR") == qsnr_before
    assert yaml_text(app, "weight") == bad_text
    # Other interactions keep the edited text too.
    app.number_input(key=S.data_key("seed")).set_value(3).run()
    assert yaml_text(app, "weight") == bad_text and is_stale(app)
    # Fixing it recomputes and clears the error.
    edit_yaml(app, "weight", bad_text.replace(new, old))
    assert not errors(app) and not is_stale(app)


def test_yaml_edit_moves_every_widget(app):
    edit_yaml(app, "outputs", (
        "calibration_mode: layer_wise\n"
        "bit_type: {bits: 6, signed: true}\n"
        "observer_type: KLObserver\n"
        "quantization_method: Affine\n"
        "percentile_alpha: 0.99\n"
        "kl_bins: 512\n"
    ))
    widgets = {field: app.session_state[S.field_key("outputs", field)] for field in S.FIELD_PATHS}
    assert widgets == {"observer_type": "KLObserver", "bits": 6, "signed": True,
                       "quantization_method": "Affine", "calibration_mode": "layer_wise",
                       "percentile_alpha": 0.99, "kl_bins": 512}
    assert app.selectbox(key="outputs.observer_type").value == "KLObserver"
    assert app.number_input(key="outputs.kl_bins").disabled is False
    assert app.number_input(key="outputs.percentile_alpha").disabled is True


# --- widgets -> YAML ---------------------------------------------------------------------


def test_widget_rewrites_only_its_yaml_line_and_keeps_comments(app):
    before = yaml_text(app, "weight").splitlines()
    app.toggle(key="weight.signed").set_value(False).run()
    after = yaml_text(app, "weight").splitlines()
    changed = {(b, a) for b, a in zip(before, after) if b != a}
    assert changed == {("  signed: true", "  signed: false"), ("  name: int8", "  name: uint8")}
    assert after[0] == "# Weight quantization config"
    assert not errors(app) and not app.warning  # the name followed, so no name warning


def test_widget_appends_a_missing_field(app):
    app.selectbox(key="weight.observer_type").set_value("PercentileObserver").run()
    assert "percentile_alpha" not in yaml_text(app, "weight")
    qsnr_before = metric(app, "Weight QSNR")
    app.number_input(key="weight.percentile_alpha").set_value(0.99).run()
    text = yaml_text(app, "weight")
    assert text.endswith("percentile_alpha: 0.99\n")
    assert "observer_type: PercentileObserver" in text
    assert metric(app, "Weight QSNR") != qsnr_before
    assert not errors(app)


def test_widget_fixes_an_invalid_yaml_value(app):
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("MinmaxObserver", "Minmax"))
    assert errors(app) and is_stale(app)
    app.selectbox(key="weight.observer_type").set_value("OmseObserver").run()
    assert "observer_type: OmseObserver" in yaml_text(app, "weight")
    assert not errors(app) and not is_stale(app)


def test_widget_change_on_broken_yaml_keeps_the_text_and_explains(app):
    edit_yaml(app, "weight", "observer_type: [\n")
    app.selectbox(key="weight.calibration_mode").set_value("layer_wise").run()
    assert yaml_text(app, "weight") == "observer_type: [\n"
    assert any("fix the YAML error first" in w.value for w in app.warning)
    assert is_stale(app) and not app.exception


@pytest.mark.parametrize("section", ["weight", "outputs"])
@pytest.mark.parametrize("observer", OBSERVER_TYPES)
def test_every_observer_runs_when_picked_in_its_widget(small_app, section, observer):
    small_app.selectbox(key=S.field_key(section, "observer_type")).set_value(observer).run()
    assert not small_app.exception
    assert not errors(small_app)
    assert f"observer_type: {observer}" in yaml_text(small_app, section)
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(small_app, f"{tensor} QSNR"))
    assert len(chart_titles(small_app)) >= 4


# --- presets, upload, activation ----------------------------------------------------------


def test_preset_switch_loads_every_section_and_recomputes(app):
    qsnr_before = metric(app, "Weight QSNR")
    app.selectbox(key=S.PRESET).set_value("w4_percentile.yaml").run()
    assert not app.exception
    assert "observer_type: PercentileObserver" in yaml_text(app, "weight")
    assert app.number_input(key="weight.bits").value == 4
    assert app.number_input(key="weight.percentile_alpha").value == pytest.approx(0.999)
    assert app.selectbox(key="outputs.quantization_method").value == "Affine"
    assert metric(app, "Weight QSNR") != qsnr_before
    assert any("w4_percentile.yaml" in s.value for s in app.success)
    assert not errors(app)


def test_upload_loads_a_valid_file_and_rejects_bad_ones(app):
    uploader = app.file_uploader(key=S.UPLOAD)
    uploader.set_value(("kl.yaml", (REPO / "configs" / "w8_kl.yaml").read_bytes(),
                        "application/x-yaml")).run()
    assert "observer_type: KLObserver" in yaml_text(app, "outputs")
    assert any("Loaded kl.yaml" in s.value for s in app.success)
    good_text = yaml_text(app, "outputs")

    for name, data, expected in (
        ("bad.yaml", b"weight: {observer_type: Nope}\noutputs: {}\n", "choose one of"),
        ("big.yaml", b"#" * 70_000, "at most"),
        ("bin.yaml", b"\xff\xfe\x00binary", "UTF-8"),
    ):
        app.file_uploader(key=S.UPLOAD).set_value((name, data, "application/x-yaml")).run()
        assert not app.exception
        assert any(name in e and expected in e for e in errors(app)), errors(app)
        assert yaml_text(app, "outputs") == good_text  # nothing changed


def test_activation_toggle_adds_a_section_and_keeps_its_text(app):
    charts_before = len(chart_titles(app))
    app.toggle(key=S.ACT_ENABLED).set_value(True).run()
    assert FINITE_DB.fullmatch(metric(app, "Input activation QSNR"))
    assert len(chart_titles(app)) > charts_before
    edited = yaml_text(app, "activation").replace("bits: 8", "bits: 6") + "# mine\n"
    edit_yaml(app, "activation", edited)
    app.toggle(key=S.ACT_ENABLED).set_value(False).run()
    assert not any(m.label.startswith("Input activation") for m in app.metric)
    app.toggle(key=S.ACT_ENABLED).set_value(True).run()
    assert yaml_text(app, "activation") == edited
    assert app.number_input(key="activation.bits").value == 6
    assert not errors(app)


# --- sample data and failures ---------------------------------------------------------------


def test_sample_data_settings_recompute(app):
    qsnr_before = metric(app, "Weight QSNR")
    app.selectbox(key=S.data_key("weight_source")).set_value("Outlier channels").run()
    assert metric(app, "Weight QSNR") != qsnr_before
    app.number_input(key=S.data_key("out_features")).set_value(100).run()
    assert any("(256×100)" in title for title in chart_titles(app))
    assert not errors(app)


def test_unrunnable_data_settings_show_a_message_and_keep_results(app):
    charts_before = chart_titles(app)
    app.number_input(key=S.data_key("num_batches")).set_value(64).run()
    app.number_input(key=S.data_key("batch_size")).set_value(8192).run()
    assert not app.exception
    assert any("too large" in e for e in errors(app))
    assert is_stale(app) and chart_titles(app) == charts_before


def test_disabled_profiler_shows_na_not_nan(app):
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("enable_profiler: true",
                                                              "enable_profiler: false"))
    assert metric(app, "Weight QSNR") == "n/a"
    assert FINITE_DB.fullmatch(metric(app, "Output QSNR"))
    assert not errors(app)


def test_unexpected_failure_is_logged_not_shown(app, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise ZeroDivisionError("internal detail")

    monkeypatch.setattr(cache, "run_pipeline", explode)
    with caplog.at_level(logging.ERROR, logger="explorer"):
        app.number_input(key=S.data_key("seed")).set_value(7).run()
    assert not app.exception
    (message,) = errors(app)
    assert "server log" in message and "internal detail" not in message
    assert is_stale(app)
    assert any("internal detail" in r.getMessage() or r.exc_info for r in caplog.records)


# --- metric and error text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(math.inf, "∞ dB (lossless)"), (-math.inf, "−∞ dB (all-zero signal)"),
     (math.nan, "n/a"), (None, "n/a"), (12.345, "12.35 dB"), (-3.0, "-3.00 dB")],
    ids=["lossless", "zero-signal", "nan", "missing", "finite", "negative"],
)
def test_qsnr_text_never_shows_nan(value, text):
    assert format_qsnr(value) == text


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [("mse", 1.5e-6, "1.500e-06"), ("cosine_similarity", 0.9999991, "0.999999"),
     ("clip_fraction", 0.00123, "0.123 %"), ("compression_ratio", 3.96, "3.96×"),
     ("mse", math.nan, "n/a"), ("compression_ratio", None, "n/a")],
)
def test_metric_text(name, value, text):
    assert format_metric(name, value) == text


def test_config_error_text_names_field_and_line():
    err = ConfigError("must be an integer from 2 to 16, got 99", "weight.bit_type.bits", 4)
    assert format_config_error(err) == (
        "**`weight.bit_type.bits`** (line 4): must be an integer from 2 to 16, got 99")
