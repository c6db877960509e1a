"""Drive app.py with Streamlit's AppTest: widgets by key, caches cleared between tests."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.compare import state as CS
from explorer.core import cache
from explorer.core import state as S
from explorer.core.formatting import format_config_error, format_metric, format_qsnr
from explorer.data import state as DS
from explorer.model import state as MS
from explorer.share.panel import markdown_literal
from explorer.single import results
from explorer.single import state as SINGLE
from explorer.teach import state as TS
from quantlib.config_loader import ConfigError
from quantlib.quant_config import OBSERVER_TYPES
from tests.helpers import (
    SMALL_LAYER,
    chart_specs,
    chart_titles,
    link_token,
    metric_cards,
    npy_upload,
    open_app,
    open_section,
)

REPO = Path(__file__).resolve().parents[1]
FINITE_DB = re.compile(r"-?\d+\.\d\d dB")


@pytest.fixture(autouse=True)
def clear_caches():
    cache.clear_all()
    yield
    cache.clear_all()


@pytest.fixture(scope="module")
def _warm_torch():
    """One throwaway run so torch's first-call warm-up is not charged to a single test."""
    open_app(**SMALL_LAYER)


@pytest.fixture
def app(_warm_torch) -> AppTest:
    return open_app()


@pytest.fixture
def small_app(_warm_torch) -> AppTest:
    return open_app(**SMALL_LAYER)


def metric(at: AppTest, label: str) -> str:
    """The value of the metric called ``label``: a Single layer card or an `st.metric`."""
    cards = [*metric_cards(at), *at.metric]
    values = [m.value for m in cards if m.label == label]
    assert len(values) == 1, f"expected one metric {label!r}, got {[m.label for m in cards]}"
    return values[0]


def result_titles(at: AppTest) -> list[str]:
    """The chart titles of every Single layer result view (each drawn only while open)."""
    opened = (at.session_state[SINGLE.RESULT_VIEW] if SINGLE.RESULT_VIEW in at.session_state  # noqa: SIM401
              else "Histograms")  # AppTest's session state has no .get
    titles = []
    for view in ("Histograms", "Error maps", "Per channel", "Profiling"):
        at.session_state[SINGLE.RESULT_VIEW] = view
        titles += chart_titles(at.run())
    at.session_state[SINGLE.RESULT_VIEW] = opened
    at.run()
    return titles


def yaml_text(at: AppTest, section: str) -> str:
    return open_section(at, section).text_area(key=S.text_key(section)).value


def edit_yaml(at: AppTest, section: str, text: str) -> AppTest:
    open_section(at, section).text_area(key=S.text_key(section)).input(text).run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def is_stale(at: AppTest) -> bool:
    return any("Stale results" in w.value for w in at.warning)


# --- default page ------------------------------------------------------------------------


RESULT_VIEW_TITLES = {
    "Histograms": ("Weight values", "Output values"),
    "Error maps": ("Weight quantization error", "Output quantization error"),
    "Per channel": ("Weight: per-channel", "Output: per-channel"),
    "Profiling": ("Time per stage", "Memory"),
}


def test_default_page_shows_the_histograms_and_metrics_and_each_view_its_plots(app):
    # Only the open result view is drawn (and sent): the histograms first.
    titles = chart_titles(app)
    assert len(titles) == 2
    for view, expected_titles in RESULT_VIEW_TITLES.items():
        app.session_state[SINGLE.RESULT_VIEW] = view
        titles = chart_titles(app.run())
        assert len(titles) == len(expected_titles), (view, titles)
        for expected in expected_titles:
            assert any(title.startswith(expected) for title in titles), (expected, titles)
    app.session_state[SINGLE.RESULT_VIEW] = "Histograms"
    app.run()
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(app, f"{tensor} QSNR"))
        assert metric(app, f"{tensor} compression").endswith("×")
    assert not any("nan" in m.value.lower() for m in metric_cards(app))
    assert not errors(app) and not is_stale(app)
    # The editors hold configs/attn_config.yaml and the widgets agree with them.
    assert "observer_type: MinmaxObserver" in yaml_text(app, "weight")
    assert app.number_input(key="weight.bits").value == 8
    assert "observer_type: PercentileObserver" in yaml_text(app, "outputs")  # opens its tab
    assert app.selectbox(key="outputs.observer_type").value == "PercentileObserver"
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
    # The sidebar's download (outside the editors' fragment) gives the edited document.
    assert "bits: 4" in app.session_state[SINGLE.DOCUMENT].read()


def test_a_reopened_config_tab_shows_what_was_typed_before_it_closed(app):
    # Only the open section's editor is drawn; its hidden text area must not come back with
    # an older value than the stored text.
    edit_yaml(app, "outputs", "# edited\n" + yaml_text(app, "outputs"))
    open_section(app, "weight").number_input(key="weight.bits").set_value(5).run()
    assert yaml_text(app, "outputs").startswith("# edited")
    app.number_input(key="outputs.percentile_alpha").set_value(0.9995).run()
    text = yaml_text(app, "outputs")
    assert text.startswith("# edited") and "percentile_alpha: 0.9995" in text
    assert app.session_state[S.store_key("outputs")] == text


def test_metric_cards_show_what_the_last_edit_changed(app):
    weight_qsnr = [m for m in metric_cards(app) if m.label == "Weight QSNR"][0]
    assert not weight_qsnr.delta  # nothing to compare with yet
    before = float(weight_qsnr.value.split()[0])
    app.number_input(key="weight.bits").set_value(4).run()
    card = [m for m in metric_cards(app) if m.label == "Weight QSNR"][0]
    after = float(card.value.split()[0])
    assert card.delta == f"{after - before:+.2f} dB" and after < before - 15
    output = [m for m in metric_cards(app) if m.label == "Output QSNR"][0]
    assert output.delta is None or output.delta.endswith("dB")
    app.run()  # a rerun of the same result keeps the same comparison
    assert [m for m in metric_cards(app) if m.label == "Weight QSNR"][0].delta == card.delta


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
                       "percentile_alpha": 0.99, "kl_bins": 512, "format": "int",
                       "block_size": 32}
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
    picker = open_section(small_app, section).selectbox(key=S.field_key(section, "observer_type"))
    picker.set_value(observer).run()
    assert not small_app.exception
    assert not errors(small_app)
    assert f"observer_type: {observer}" in yaml_text(small_app, section)
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(small_app, f"{tensor} QSNR"))
    assert len(result_titles(small_app)) >= 4


# --- presets, upload, activation ----------------------------------------------------------


def test_preset_switch_loads_every_section_and_recomputes(app):
    qsnr_before = metric(app, "Weight QSNR")
    app.selectbox(key=S.PRESET).set_value("w4_percentile.yaml").run()
    assert not app.exception
    assert "observer_type: PercentileObserver" in yaml_text(app, "weight")
    assert app.number_input(key="weight.bits").value == 4
    assert app.number_input(key="weight.percentile_alpha").value == pytest.approx(0.999)
    assert metric(app, "Weight QSNR") != qsnr_before
    assert any("w4_percentile.yaml" in s.value for s in app.success)  # shown once
    assert not errors(app)
    assert open_section(app, "outputs").selectbox(
        key="outputs.quantization_method").value == "Affine"


def test_upload_loads_a_valid_file_and_rejects_bad_ones(app):
    uploader = app.file_uploader(key=S.UPLOAD)
    uploader.set_value(("kl.yaml", (REPO / "configs" / "w8_kl.yaml").read_bytes(),
                        "application/x-yaml")).run()
    assert any("Loaded kl.yaml" in s.value for s in app.success)  # shown once
    assert "observer_type: KLObserver" in yaml_text(app, "outputs")
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
    charts_before = len(result_titles(app))
    app.toggle(key=S.ACT_ENABLED).set_value(True).run()
    assert FINITE_DB.fullmatch(metric(app, "Input activation QSNR"))
    assert len(result_titles(app)) > charts_before
    # (name renamed too: since issue 14 a bits edit renames a default-pattern name itself)
    edited = yaml_text(app, "activation").replace("bits: 8", "bits: 6") \
        .replace("name: int8", "name: int6") + "# mine\n"
    edit_yaml(app, "activation", edited)
    app.toggle(key=S.ACT_ENABLED).set_value(False).run()
    assert not any(m.label.startswith("Input activation") for m in metric_cards(app))
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
    assert any("(256×100)" in title for title in result_titles(app))
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
    notes = [h.value for h in app.get("html") if "profiling is off" in h.value]
    assert len(notes) == 1 and "Weight: profiling is off" in notes[0]  # said once, for weight
    assert not errors(app)


def test_unexpected_failure_is_logged_not_shown(app, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise ZeroDivisionError("internal detail")

    monkeypatch.setattr(results, "run_pipeline", explode)
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


# --- real data sources and the whole-model tab ------------------------------------------------


@pytest.fixture(scope="session")
def _digits_cache_home(tmp_path_factory):
    """One private cache home for the digits MLP: trained once, then read from disk."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def digits_home(_digits_cache_home, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(_digits_cache_home))
    return _digits_cache_home


def test_trained_digits_source_quantizes_a_real_layer(digits_home, _warm_torch):
    at = open_app(**SMALL_LAYER)
    at.selectbox(key=S.data_key("source")).set_value("digits").run()
    assert not at.exception and not errors(at)
    assert list((digits_home / "quant-explorer").glob("*.safetensors"))  # trained and cached
    assert at.number_input(key=S.data_key("in_features")).value == 64  # fc1: the real shape
    assert at.number_input(key=S.data_key("in_features")).disabled
    at.selectbox(key=S.data_key("model_layer")).set_value("fc2").run()
    assert not at.exception and not errors(at)
    assert (at.number_input(key=S.data_key("in_features")).value,
            at.number_input(key=S.data_key("out_features")).value) == (256, 128)
    titles = result_titles(at)
    assert any("(128×256)" in title for title in titles)  # the weight's error map
    assert any("(360×128)" in title for title in titles)  # 360 held-out rows
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(at, f"{tensor} QSNR"))
    assert any("real inputs of fc2" in c.value for c in at.caption)
    # Back to synthetic: the synthetic shape comes back and the widgets are enabled again.
    at.selectbox(key=S.data_key("source")).set_value("synthetic").run()
    assert at.number_input(key=S.data_key("in_features")).value == SMALL_LAYER["in_features"]
    assert not at.number_input(key=S.data_key("in_features")).disabled


def test_whole_model_tab_shows_accuracy_table_and_charts(digits_home, _warm_torch):
    at = open_app(**SMALL_LAYER)
    assert not any(m.label == "fp32 accuracy" for m in at.metric)  # lazy: tab closed
    at.session_state[S.TABS] = "Whole model"
    at.run()
    assert not at.exception and not errors(at)
    fp32 = metric(at, "fp32 accuracy")
    assert re.fullmatch(r"\d+\.\d %", fp32) and float(fp32.split()[0]) > 90
    assert re.fullmatch(r"\d+\.\d %", metric(at, "Quantized accuracy"))
    table = at.dataframe[0].value
    assert list(table["layer"]) == ["fc1", "fc2", "fc3"]
    assert all(math.isfinite(v) for v in table["weight QSNR (dB)"])
    titles = chart_titles(at)
    assert any(t.startswith("QSNR per layer") for t in titles)
    assert any(t.startswith("Sensitivity") for t in titles)
    # Compare: the Compare tab's configs and presets, side by side with the current config.
    three_bits = "weight:\n  bit_type: {bits: 3}\noutputs:\n  bit_type: {bits: 3}\n"
    at.session_state[CS.COMPARE_ENTRIES] = (("W3", three_bits), ("bad", "weight: {bits: 99}\n"))
    at.multiselect(key=MS.MODEL_COMPARE_WIDGET).set_value(["w4_omse.yaml", "w8_kl.yaml"]).run()
    assert not at.exception and not errors(at)
    assert any("'bad' has an error" in w.value for w in at.warning)
    compare = at.dataframe[1].value
    assert list(compare["config"]) == ["current config", "Compare: W3", "Preset: w4_omse.yaml",
                                       "Preset: w8_kl.yaml"]
    assert compare["quantized (%)"][1] < compare["quantized (%)"][0]  # 3 bits hurt
    # The settings are listed under the table (issue 14: the column was cut off at 1400 px).
    assert any("**Compare: W3**: weight: int3" in m.value for m in at.markdown)
    assert any(t.startswith("Whole-model top-1 accuracy per config") for t in chart_titles(at))
    # An invalid config keeps the last good whole-model result, marked stale.
    at.session_state[S.TABS] = "Single layer"
    at.run()
    edit_yaml(at, "weight", yaml_text(at, "weight").replace("bits: 8", "bits: 99"))
    at.session_state[S.TABS] = "Whole model"
    at.run()
    assert not at.exception and is_stale(at)
    assert metric(at, "fp32 accuracy") == fp32
    assert at.multiselect(key=MS.MODEL_COMPARE_WIDGET).value == ["w4_omse.yaml", "w8_kl.yaml"]


def test_tensor_upload_quantizes_it_and_a_corrupt_file_keeps_the_app_working(_warm_torch):
    import numpy as np

    at = open_app(source="upload", num_batches=2, batch_size=32)
    assert any("Upload a weight tensor" in i.value for i in at.info)
    weight = np.random.default_rng(0).standard_normal((48, 80)).astype(np.float32)
    at.file_uploader(key=DS.UPLOAD_WEIGHT_FILE).set_value(npy_upload("w.npy", weight)).run()
    assert not at.exception and not errors(at) and not is_stale(at)
    assert any("(48×80)" in title for title in result_titles(at))
    assert FINITE_DB.fullmatch(metric(at, "Weight QSNR"))
    charts, qsnr = chart_titles(at), metric(at, "Weight QSNR")
    for name, data in (("bad.npy", b"\x93NUMPY\x01\x00garbage"),
                       ("short.npy", npy_upload("x", weight)[1][:-100]),
                       ("flags.npy", npy_upload("x", weight > 0)[1]),
                       ("vector.npy", npy_upload("x", weight[0])[1])):
        at.file_uploader(key=DS.UPLOAD_WEIGHT_FILE).set_value(
            (name, data, "application/octet-stream")).run()
        assert not at.exception
        (message,) = errors(at)
        assert markdown_literal(name) in message and "previous data stays in use" in message
        assert chart_titles(at) == charts and metric(at, "Weight QSNR") == qsnr
        assert not is_stale(at)
    # Calibration inputs of the wrong width are refused next to their uploader.
    at.file_uploader(key=DS.UPLOAD_INPUT_FILE).set_value(
        npy_upload("x.npy", np.ones((10, 81), np.float32))).run()
    assert any(markdown_literal("x.npy") in e and markdown_literal("in_features=80") in e
               for e in errors(at))
    at.file_uploader(key=DS.UPLOAD_INPUT_FILE).set_value(
        npy_upload("x.npy", np.ones((100, 80), np.float32))).run()
    assert not at.exception and not any("x.npy" in e for e in errors(at))
    assert any(f"Calibrating on {markdown_literal('x.npy')}: 100 rows" in c.value
               for c in at.caption)


# --- compare view -----------------------------------------------------------------------------

COMPARE_CHARTS = {"compare.chart.sweep", "compare.chart.channels", "compare.chart.pareto",
                  "compare.chart.weight_histogram", "compare.chart.weight_curve",
                  "compare.chart.output_histogram", "compare.chart.output_curve"}


def compare_charts(at: AppTest) -> dict[str, dict]:
    return {key: figure for key, figure in chart_specs(at)
            if (key or "").startswith("compare.")}


COMPARE_TABLES = {"compare.metrics": "Weight observer", "compare.lost": "Weight bits"}


def compare_table(at: AppTest, key: str):
    """A compare table by its key (dataframes carry no key in AppTest: found by a column, the
    diff by its index name)."""
    found = [d.value for d in at.dataframe
             if (d.value.index.name == "field" if key == "compare.diff"
                 else COMPARE_TABLES[key] in d.value.columns)]
    assert len(found) == 1, f"{key}: found {len(found)} tables"
    return found[0]


def test_compare_view_end_to_end(small_app):
    at = small_app
    at.session_state[S.TABS] = "Compare"
    at.run()
    assert not at.exception
    # First visit: A = the current config, B = A with other observers (issue 14: identical
    # copies hid A under B on every chart), and the page says so.
    assert [at.text_input(key=CS.compare_key(CS.COMPARE_NAME, i)).value for i in (0, 1)] == \
        ["A", "B"]
    document = at.text_area(key=CS.compare_key(CS.COMPARE_YAML, 0)).value
    assert "weight:" in document and "outputs:" in document
    assert any("B starts as A with other observers" in i.value for i in at.info)
    assert list(compare_table(at, "compare.diff").index) == ["weight.observer_type",
                                                            "outputs.observer_type"]
    assert set(compare_charts(at)) == COMPARE_CHARTS

    at.button(key=CS.COMPARE_CLASSIC).click().run()
    assert not at.exception and not errors(at)
    names = ["MinMax", "Percentile", "OMSE", "KL"]
    metrics = compare_table(at, "compare.metrics")
    assert list(metrics.index) == names and len(metrics) == 4
    assert list(metrics["Weight observer"]) == [f"{n}Observer" for n in
                                               ("Minmax", "Percentile", "Omse", "KL")]
    assert all(math.isfinite(q) for q in metrics["Output QSNR (dB)"])
    diff = compare_table(at, "compare.diff")
    assert list(diff.index) == ["weight.observer_type", "outputs.observer_type"]
    charts = compare_charts(at)
    assert set(charts) == COMPARE_CHARTS
    for key in COMPARE_CHARTS:  # every chart draws each config as its own, named series
        assert set(names) <= {trace.get("name") for trace in charts[key]["data"]}, key

    # A valid edit: KL's weight at 4 bits shows in the diff and costs weight QSNR.
    kl = CS.compare_key(CS.COMPARE_YAML, 3)
    text = at.text_area(key=kl).value
    four = text.replace("bits: 8\n    signed: true\n    name: int8",
                        "bits: 4\n    signed: true\n    name: int4")
    assert four != text
    at.text_area(key=kl).input(four).run()
    assert not at.exception and not errors(at)
    diff = compare_table(at, "compare.diff")
    assert list(diff.loc["weight.bit_type.bits"]) == ["8", "8", "8", "4"]
    metrics = compare_table(at, "compare.metrics")
    assert metrics.loc["KL", "Weight QSNR (dB)"] < metrics.loc["MinMax", "Weight QSNR (dB)"] - 15

    # An invalid edit: an inline error for that config (field, line, valid choices); the
    # other three still render and the bad text is kept.
    percentile = CS.compare_key(CS.COMPARE_YAML, 1)
    bad = at.text_area(key=percentile).value.replace("PercentileObserver", "Percentil", 1)
    at.text_area(key=percentile).input(bad).run()
    assert not at.exception
    (message,) = errors(at)
    assert message.startswith("Percentile: **`weight.observer_type`** (line ")
    assert "choose one of MinmaxObserver" in message
    assert at.text_area(key=percentile).value == bad
    assert list(compare_table(at, "compare.metrics").index) == ["MinMax", "OMSE", "KL"]
    assert set(compare_charts(at)) == COMPARE_CHARTS

    # Broken YAML syntax is an inline error too; one channel's curves render.
    at.text_area(key=percentile).input("weight: [\n").run()
    assert not at.exception and len(errors(at)) == 1
    at.radio(key=CS.COMPARE_SCOPE).set_value("One channel").run()
    at.number_input(key=CS.COMPARE_CHANNEL).set_value(5).run()
    assert not at.exception
    curve = compare_charts(at)["compare.chart.weight_curve"]
    assert "channel 5" in curve["layout"]["title"]["text"]


def test_compare_buttons_add_remove_reset_and_keep_edits_across_tabs(small_app):
    at = small_app
    at.session_state[S.TABS] = "Compare"
    at.run()
    at.button(key=CS.COMPARE_ADD).click().run()
    at.button(key=CS.COMPARE_ADD).click().run()
    assert [n for n, _ in at.session_state[CS.COMPARE_ENTRIES]] == ["A", "B", "C", "D"]
    assert at.button(key=CS.COMPARE_ADD).disabled
    at.text_input(key=CS.compare_key(CS.COMPARE_NAME, 2)).input("mine").run()
    at.button(key=CS.compare_key(CS.COMPARE_REMOVE, 0)).click().run()
    assert [n for n, _ in at.session_state[CS.COMPARE_ENTRIES]] == ["B", "mine", "D"]
    assert at.text_input(key=CS.compare_key(CS.COMPARE_NAME, 1)).value == "mine"
    assert len(compare_table(at, "compare.metrics")) == 3
    # Leaving the tab drops its widgets; coming back re-seeds them from the stored entries.
    at.session_state[S.TABS] = "Single layer"
    at.run()
    at.session_state[S.TABS] = "Compare"
    at.run()
    assert at.text_input(key=CS.compare_key(CS.COMPARE_NAME, 1)).value == "mine"
    at.button(key=CS.COMPARE_RESET).click().run()
    assert [n for n, _ in at.session_state[CS.COMPARE_ENTRIES]] == ["A", "B"]
    assert not at.exception


# --- teaching / sharing: the Teach tab, shareable links, exports ------------------------------


def open_teach(at: AppTest) -> AppTest:
    at.session_state[S.TABS] = "Teach"
    at.run()
    assert not at.exception, at.exception
    return at


def test_teach_tab_explains_the_layer_with_its_own_numbers(small_app):
    from explorer.core.pipeline import DataSettings, run_pipeline
    from explorer.data.sources import make_sample_data
    from quantlib.config_loader import load_config_from_yaml

    assert not any(s.value.startswith("1 ·") for s in small_app.subheader)  # lazy: tab closed
    at = open_teach(small_app)
    headings = [s.value for s in at.subheader]
    for number in "12345":
        assert any(h.startswith(f"{number} ·") for h in headings), headings
    result = run_pipeline(load_config_from_yaml(REPO / "configs" / "attn_config.yaml"),
                          make_sample_data(DataSettings(**SMALL_LAYER)))
    latex = [element.value for element in at.latex]
    for name in ("weight", "output"):
        scale = float(result.tensors[name].scale[0])
        assert any(f"{scale:.6g}" in line for line in latex), (name, scale)
    assert any("Matches the layer exactly" in s.value for s in at.success)
    for label in ("Weight codes used", "Output codes used", "Weight effective bits",
                  "Total MSE", "Clipping MSE", "Rounding MSE"):
        assert metric(at, label) != "n/a"
    assert not errors(at)
    # Another channel and another weight: still the layer's numbers, still exact.
    at.number_input(key=f"{TS.TEACH_CHANNEL}.weight").set_value(5).run()
    assert any(f"{float(result.tensors['weight'].scale[5]):.6g}" in e.value for e in at.latex)
    at.number_input(key=TS.TEACH_ROW).set_value(63).run()
    at.number_input(key=TS.TEACH_COL).set_value(95).run()
    assert any("quant_weight[63, 95]" in s.value and "exactly" in s.value for s in at.success)
    at.radio(key=TS.TEACH_TENSOR).set_value("output").run()
    assert not at.exception and not errors(at)


def test_teach_tab_waits_for_a_valid_config(small_app):
    at = open_teach(small_app)
    edit_yaml(at, "weight", "observer_type: [\n")
    assert any("fix the config errors" in i.value for i in at.info)
    assert any(s.value.startswith("5 ·") for s in at.subheader)  # scenarios still there
    assert not at.exception


@pytest.mark.parametrize("name", ["outlier_channel", "relu_unsigned", "heavy_tails",
                                  "omse_4bit", "llm_outlier_feature"])
def test_every_scenario_loads_config_a_and_reveals_a_vs_b(small_app, name):
    from explorer.teach.lessons import SCENARIOS
    from quantlib.config_loader import load_config_from_string, parse_section

    scenario = SCENARIOS[name]
    at = open_teach(small_app)
    at.button(key=f"{TS.TEACH_LOAD}.{name}").click().run()
    assert not at.exception, at.exception
    expected = load_config_from_string(scenario.config_a)
    assert at.toggle(key=S.ACT_ENABLED).value is (expected["activation"] is not None)
    assert any(scenario.title in s.value for s in at.success)  # shown once
    for section in S.enabled_sections(at.session_state):
        config = parse_section(yaml_text(at, section), section)
        assert config == expected[S.RESULT_KEYS[section]], section
    for field, value in scenario.settings.as_dict().items():
        assert at.session_state[S.data_key(field)] == value, field
    assert at.session_state[TS.TEACH_SCENARIO] == name
    assert not errors(at)
    for tensor in ("Weight", "Output"):
        assert FINITE_DB.fullmatch(metric(at, f"{tensor} QSNR"))
    # The reveal runs A and B only once opened.
    assert not any(scenario.reveal in m.value for m in at.markdown)
    at.session_state[f"{TS.TEACH_REVEAL}.{name}"] = True
    at.run()
    assert not at.exception
    assert any(scenario.reveal in m.value for m in at.markdown)
    (table,) = [m.value for m in at.markdown if m.value.startswith("| Tensor")]
    assert scenario.label_a in table and scenario.label_b in table
    assert len(FINITE_DB.findall(table)) >= 4  # A and B QSNR of weight and output


def test_link_round_trips_to_identical_numbers(small_app):
    at = small_app
    edit_yaml(at, "weight", "# shared\n" + yaml_text(at, "weight").replace("bits: 8", "bits: 5")
              .replace("name: int8", "name: int5"))
    at.number_input(key=S.data_key("seed")).set_value(11).run()
    token = at.query_params["s"]  # the app keeps the address bar's link current
    assert any(f"?s={token}" in c.value for c in at.sidebar.code)
    shown = {label: metric(at, label) for label in
             ("Weight QSNR", "Output QSNR", "Weight MSE", "Output MSE", "Output clipped")}

    other = open_app(token)  # a new session: no presets, the link alone
    assert any("from the link" in s.value for s in other.success)
    assert {label: metric(other, label) for label in shown} == shown
    for section in ("outputs", "weight"):
        assert yaml_text(other, section) == yaml_text(at, section)
    assert other.number_input(key="weight.bits").value == 5
    assert other.query_params["s"] == token
    # The link is read once: later edits in that session stick.
    edit_yaml(other, "weight", yaml_text(other, "weight").replace("bits: 5", "bits: 6"))
    assert other.number_input(key="weight.bits").value == 6
    assert metric(other, "Weight QSNR") != shown["Weight QSNR"]


def test_link_carries_the_activation_toggle(small_app):
    at = small_app
    at.toggle(key=S.ACT_ENABLED).set_value(True).run()
    qsnr = metric(at, "Input activation QSNR")
    other = open_app(at.query_params["s"])
    assert other.toggle(key=S.ACT_ENABLED).value is True
    assert metric(other, "Input activation QSNR") == qsnr


HOSTILE_LINKS = {
    "garbage": "%%%not-base64%%%",
    "oversized": "A" * 20_000,
    "python-tag": link_token("v: 1\nweight: !!python/object/apply:os.system [ls]\n"),
    "bad-date": link_token("v: 1\nweight: 2001-13-45\n"),
    "deep-nesting": link_token("[" * 30_000),
    "bad-yaml-inside": link_token("v: 1\nweight: 'bits: [8'\noutputs: 'kl_bins: 512'\n"
                                  "data: {}\n"),
    "bad-bits": link_token("v: 1\nweight: 'bit_type: {bits: 99}'\noutputs: 'kl_bins: 512'\n"
                           "data: {}\n"),
    "huge-layer": link_token("v: 1\nweight: 'kl_bins: 512'\noutputs: 'kl_bins: 512'\n"
                             "data: {in_features: 100000000}\n"),
}


@pytest.mark.parametrize("token", list(HOSTILE_LINKS.values()), ids=list(HOSTILE_LINKS))
def test_bad_or_hostile_link_shows_an_error_and_the_default_state(_warm_torch, token):
    at = open_app(token, **SMALL_LAYER)
    (message,) = errors(at)
    assert "could not be opened" in message and "Traceback" not in message
    assert "observer_type: MinmaxObserver" in yaml_text(at, "weight")  # the default preset
    assert "observer_type: PercentileObserver" in yaml_text(at, "outputs")
    assert FINITE_DB.fullmatch(metric(at, "Weight QSNR"))
    assert at.query_params["s"] != token  # the address bar now holds the default state
    at.run()
    assert not errors(at)  # said once


def test_export_buttons_follow_the_results_on_screen(small_app):
    keys = {"share.download_html", "share.download_json", "share.download_csv",
            "share.download_safetensors"}
    shown = {button.key for button in small_app.sidebar.get("download_button")}
    assert keys <= shown
    edit_yaml(small_app, "weight", "observer_type: [\n")  # stale results: nothing to export
    shown = {button.key for button in small_app.sidebar.get("download_button")}
    assert not keys & shown
    assert any("to share or export" in c.value for c in small_app.sidebar.caption)


# --- issue 14: guidance on screen, no clipped numbers -----------------------------------------

WIDGET_TYPES = ("button", "checkbox", "multiselect", "number_input", "radio", "selectbox",
                "text_area", "text_input", "toggle")


def plotly_array(value) -> list:
    """A Plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}``."""
    if isinstance(value, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def main_tab(at: AppTest, label: str):
    (tab,) = [t for t in at.tabs if t.label == label]
    return tab


def tab_widgets(at: AppTest, tab: str) -> list:
    """Every input widget drawn inside ``tab`` (not the sidebar, not the other tabs)."""
    block = main_tab(at, tab)
    return [widget for kind in WIDGET_TYPES for widget in block.get(kind)]


@pytest.mark.parametrize("tab", ["Teach", "Compare", "Whole model"])
def test_every_widget_of_the_tab_has_plain_help(small_app, digits_home, tab):
    at = small_app
    at.session_state[S.TABS] = tab
    at.run()
    if tab == "Teach":  # a loaded scenario draws its reveal expander too
        at.button(key=f"{TS.TEACH_LOAD}.heavy_tails").click().run()
    assert not at.exception
    widgets = tab_widgets(at, tab)
    assert len(widgets) >= {"Teach": 9, "Compare": 12, "Whole model": 1}[tab]
    missing = [(type(w).__name__, w.label) for w in widgets if not (w.help or "").strip()]
    assert not missing, missing


@pytest.mark.parametrize("source", ["synthetic", "digits", "upload"])
def test_every_single_layer_and_sidebar_widget_has_plain_help(digits_home, _warm_torch, source):
    at = open_app(source=source, **SMALL_LAYER)
    at.toggle(key=S.ACT_ENABLED).set_value(True).run()  # the activation editor too
    for section, view in zip(S.SECTIONS, ("Error maps", "Per channel", "Histograms")):
        open_section(at, section)  # each editor, and the views with their own toggles
        at.session_state[SINGLE.RESULT_VIEW] = view
        at.run()
        widgets = tab_widgets(at, "Single layer") + [
            w for kind in WIDGET_TYPES for w in at.sidebar.get(kind)]
        assert len(widgets) >= 20, len(widgets)
        missing = [(type(w).__name__, w.label) for w in widgets if not (w.help or "").strip()]
        assert not missing, missing
    uploaders = at.sidebar.get("file_uploader")
    assert uploaders and all((u.proto.help or "").strip() for u in uploaders)


def test_a_yaml_edit_of_bits_renames_a_default_name_and_says_so(app):
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("bits: 8", "bits: 4"))
    assert not app.exception
    text = yaml_text(app, "weight")
    assert "bits: 4" in text and "name: int4" in text and "name: int8" not in text
    assert "# Weight quantization config" in text  # the rest of the text is kept
    assert app.number_input(key="weight.bits").value == 4
    assert any("Adjusted `bit_type.name` from int8 to int4" in w.value for w in app.warning)
    assert not any("does not match" in w.value for w in app.warning)
    titles = " ".join(chart_titles(app))
    assert "int4" in titles and "int8" not in titles.split("Output")[0]
    # signed: false renames it to uint4; a custom name is kept as typed.
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("signed: true", "signed: false"))
    assert "name: uint4" in yaml_text(app, "weight")
    edit_yaml(app, "weight", yaml_text(app, "weight").replace("name: uint4", "name: mine")
              .replace("bits: 4", "bits: 6"))
    assert "name: mine" in yaml_text(app, "weight")


def test_scenario_load_confirms_by_its_button_and_clears_the_preset(small_app):
    from explorer.teach.lessons import SCENARIOS

    at = open_teach(small_app)
    name = "heavy_tails"
    locked = at.button(key=f"{TS.TEACH_REVEAL}.locked.{name}")
    assert locked.disabled and "Load the scenario" in locked.help  # no reveal before Load
    assert not any(e.label.startswith("Reveal") for e in at.expander)
    assert at.selectbox(key=S.PRESET).value == S.DEFAULT_PRESET
    at.button(key=f"{TS.TEACH_LOAD}.{name}").click().run()
    assert not at.exception
    assert at.selectbox(key=S.PRESET).value is None  # the picker no longer names a preset
    teach = main_tab(at, "Teach")
    assert any(SCENARIOS[name].title in s.value for s in teach.success)  # by the button
    assert not any(SCENARIOS[name].title in s.value for s in at.sidebar.success)
    weight = yaml_text(at, "weight")
    assert weight.startswith("# Scenario: ") and "observer_type: MinmaxObserver" in weight
    assert "# B: PercentileObserver" in weight and "kl_bins: 2048" in weight  # full, commented
    assert any(e.label.startswith("Reveal") for e in at.expander)
    # Picking a preset again loads it as before.
    at.selectbox(key=S.PRESET).set_value("w4_omse.yaml").run()
    assert "OmseObserver" in yaml_text(at, "weight")


def test_whole_model_shows_no_signed_zero_change(digits_home, _warm_torch):
    at = open_app(**SMALL_LAYER)
    at.session_state[S.TABS] = "Whole model"
    at.run()
    card = next(m for m in at.metric if m.label == "Quantized accuracy")
    delta = card.proto.delta
    assert not delta.startswith("-0.0") and not delta.startswith("+0.0")
    drop = metric(at, "Accuracy drop")
    assert not drop.startswith("-0.0")
    if delta == "0.0 pp":  # no change: grey, no arrow
        assert card.proto.color == 2 or "off" in str(card.proto).lower()
    sensitivity = next(figure for key, figure in chart_specs(at)
                       if key == "chart.model_sensitivity")
    assert sensitivity["layout"]["yaxis"]["range"][1] == 100.0
    assert not sensitivity["layout"].get("annotations")  # reference lines named in the legend


def test_compare_marks_sit_on_the_curve_and_channels_are_sorted(small_app):
    at = small_app
    at.session_state[S.TABS] = "Compare"
    at.run()
    charts = compare_charts(at)
    channels = charts["compare.chart.channels"]
    for trace in channels["data"]:
        x, y = plotly_array(trace["x"]), plotly_array(trace["y"])
        assert x[0] == 0 and x[-1] == 100  # % of the channels, worst first
        assert all(a <= b for a, b in zip(y, y[1:]))  # sorted: one monotone line per config
    curve = charts["compare.chart.weight_curve"]
    marks = [t for t in curve["data"] if t["name"] in ("A", "B")]
    assert len(marks) == 2 and all(t["marker"]["symbol"] == "circle" for t in marks)
    lost = compare_table(at, "compare.lost")
    assert not any(str(v).startswith("-0.00") for v in lost.to_numpy().ravel())
