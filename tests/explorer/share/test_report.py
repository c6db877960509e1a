"""The standalone report: HTML with interactive figures, metrics exports and the CLI."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.core.pipeline import DataSettings, run_pipeline
from explorer.data.sources import make_sample_data
from explorer.share.report import build_report_html, main, metrics_to_csv, metrics_to_json
from quantlib.config_loader import load_config_from_yaml

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "attn_config.yaml"
SMALL = ["--in-features", "64", "--out-features", "48", "--num-batches", "2",
         "--batch-size", "32"]


@pytest.fixture(scope="module")
def result():
    settings = DataSettings(in_features=64, out_features=48, num_batches=2, batch_size=32)
    return run_pipeline(load_config_from_yaml(CONFIG), make_sample_data(settings))


def test_report_html_is_self_contained_with_every_figure(result):
    page = build_report_html(result, CONFIG.read_text(), "demo")
    assert page.count("Plotly.newPlot") >= 6  # histograms, error maps, per-channel, time, memory
    assert "<script src=" not in page  # plotly.js is inlined, nothing is fetched
    assert "observer_type: PercentileObserver" in page
    assert "weight" in page and "output" in page


def test_metrics_exports_agree(result):
    rows = list(csv.DictReader(io.StringIO(metrics_to_csv(result))))
    data = json.loads(metrics_to_json(result))
    assert [r["tensor"] for r in rows] == [t["tensor"] for t in data["tensors"]]
    for row, tensor in zip(rows, data["tensors"]):
        stats = result.tensors[row["tensor"]].statistics
        assert float(row["qsnr"]) == pytest.approx(stats["qsnr"])
        assert tensor["qsnr"] == pytest.approx(stats["qsnr"])
    assert data["settings"]["in_features"] == 64


def test_cli_writes_report_and_metrics(tmp_path):
    out, metrics = tmp_path / "report.html", tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "explorer.report", "--config", str(CONFIG), "-o", str(out),
         "--metrics", str(metrics), *SMALL], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "QSNR" in proc.stdout and out.stat().st_size > 100_000
    assert json.loads(metrics.read_text())["tensors"][0]["tensor"] == "weight"


@pytest.mark.parametrize("args,fragment", [
    (["--in-features", "100000"], "in_features"),
    (["--input-source", "Evil"], None),
    (["--source", "upload"], "invalid choice"),
    (["--upload-weight", "0" * 64], "unrecognized arguments"),  # uploads need the app
], ids=["too-large", "unknown-source", "upload-source", "upload-flag"])
def test_cli_rejects_bad_arguments_cleanly(tmp_path, capsys, args, fragment):
    try:
        code = main(["--config", str(CONFIG), "-o", str(tmp_path / "r.html"), *args])
    except SystemExit as exit_:  # argparse rejects unknown choices itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and (fragment is None or fragment in err)
    assert not (tmp_path / "r.html").exists()


def test_cli_reports_a_bad_config_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("weight:\n  bit_type: {bits: 99}\noutputs: {}\n")
    assert main(["--config", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert "weight.bit_type.bits" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_cli_refuses_a_non_regular_config_without_hanging(tmp_path, kind):
    if kind == "fifo":
        config = tmp_path / "config.fifo"
        os.mkfifo(config)  # nobody writes: reading it would block forever
    elif kind == "dev-zero":
        config = Path("/dev/zero")  # endless: reading it would never finish
    else:
        config = tmp_path
    out = tmp_path / "r.html"
    proc = subprocess.run(
        [sys.executable, "-m", "explorer.report", "--config", str(config), "-o", str(out),
         *SMALL], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_report_body_is_the_config_text_as_written(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("# my comment\n" + CONFIG.read_text())
    out = tmp_path / "r.html"
    assert main(["--config", str(config), "-o", str(out), *SMALL]) == 0
    assert "# my comment" in out.read_text()


def _output_cases(tmp_path: Path) -> dict:
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG.read_text())
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "plain.txt").write_text("x")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    return {  # name -> (args after --config, fragment of the one-line error)
        "missing-folder": (["-o", str(tmp_path / "nope" / "r.html")], "does not exist"),
        "output-is-a-directory": (["-o", str(tmp_path / "a_dir")], "is a directory"),
        "dev-full": (["-o", "/dev/full"], "not a regular file"),
        "output-fifo": (["-o", str(fifo)], "not a regular file"),
        "folder-is-a-file": (["-o", str(tmp_path / "plain.txt" / "r.html")], "Not a directory"),
        "output-is-the-config": (["-o", str(config)], "same file as --config"),
        "output-is-the-config-relative": (
            ["-o", str(tmp_path / "a_dir" / ".." / "cfg.yaml")], "same file as --config"),
        "metrics-is-the-config": (["-o", str(tmp_path / "r.html"), "--metrics", str(config)],
                                  "--metrics"),
        "metrics-is-the-output": (["-o", str(tmp_path / "r.html"), "--metrics",
                                   str(tmp_path / "r.html")], "same file as --output"),
        "metrics-is-a-directory": (["-o", str(tmp_path / "r.html"), "--metrics",
                                    str(tmp_path / "a_dir")], "is a directory"),
    }


OUTPUT_CASES = ["missing-folder", "output-is-a-directory", "dev-full", "output-fifo",
                "folder-is-a-file", "output-is-the-config", "output-is-the-config-relative",
                "metrics-is-the-config", "metrics-is-the-output", "metrics-is-a-directory"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_cli_checks_output_paths_before_the_compute(tmp_path, capsys, monkeypatch, case):
    from explorer.share import report

    args, fragment = _output_cases(tmp_path)[case]
    config = tmp_path / "cfg.yaml"
    before = config.read_bytes()

    def tripwire(*a, **k):
        raise AssertionError("the pipeline ran before the paths were checked")

    monkeypatch.setattr(report, "run_pipeline", tripwire)
    assert main(["--config", str(config), *args, *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err
    assert config.read_bytes() == before  # -o equal to --config never overwrites it
    assert not (tmp_path / "r.html").exists()


def test_cli_write_failure_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A disk that fills up while writing (ENOSPC, as /dev/full gives) exits 2 cleanly."""
    from explorer.share import report

    full = tmp_path / "tmp-on-full-disk"
    monkeypatch.setattr(report.tempfile, "mkstemp",
                        lambda **kw: (os.open("/dev/full", os.O_WRONLY), str(full)))
    out = tmp_path / "r.html"
    out.write_text("previous report")
    assert main(["--config", str(CONFIG), "-o", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"error: cannot write {out}: No space left on device"), err
    assert not any("Traceback" in line for line in err)
    assert out.read_text() == "previous report"  # the old report is intact


# --- issue 14: units, a settings table, viewport width, size, Compare and Whole model ---------

def test_report_has_units_a_settings_table_and_fits_in_a_small_file(result):
    import re

    page = build_report_html(result, CONFIG.read_text(), "demo")
    assert "QSNR (dB)" in page and "clipped (%)" in page and "compression (×)" in page
    assert "<th class=\"l\">In features</th>" in page  # settings: a table, not a JSON dump
    assert '{"in_features"' not in page
    assert "max-width:100%" in page.replace(" ", "") and "overflow-x:auto" in page
    assert 'name="viewport"' in page
    assert page.count("plotlyjs-gz") == 2  # one embedded plotly.js (+ the loader's reference)
    assert len(page.encode()) < 1_500_000, len(page.encode())  # was 5.7 MB
    scripts = re.findall(r'<script id="([^"]+)"', page)
    assert scripts == ["plotlyjs-gz", "figures-gz"]


def test_report_covers_compare_and_whole_model_when_given(result):
    from explorer.compare import runs as C
    from explorer.data.sources import make_sample_data
    from explorer.model.summary import WholeModelSummary
    from quantlib.config_loader import load_config_from_yaml

    configs = load_config_from_yaml(CONFIG)
    data = make_sample_data(result.settings)
    runs = {"A": C.calibrate_config(configs, data)[1]}
    sweeps = {"A": C.Sweep((4, 8), (20.0, 40.0), (18.0, 38.0))}
    model = WholeModelSummary(seed=0, layers=({"name": "fc1", "shape": "256 x 64",
                                               "weight_qsnr": 40.0, "output_qsnr": 39.0,
                                               "cumulative_output_qsnr": 39.0,
                                               "weight_clip_fraction": 0.0,
                                               "output_clip_fraction": 0.001},),
                              fp32_accuracy=0.972, quantized_accuracy=0.972,
                              num_calibration_rows=1437, num_eval_rows=360,
                              sensitivity={"fc1": 0.97})
    plain = build_report_html(result, CONFIG.read_text(), "demo")
    page = build_report_html(result, CONFIG.read_text(), "demo", compare_runs=runs,
                             compare_sweeps=sweeps, model=model)
    assert "<h2>Compare</h2>" in page and "Weight QSNR (dB)" in page
    assert "<h2>Whole model (digits MLP)</h2>" in page and "a drop of 0.0 pp" in page
    assert page.count("Plotly.newPlot") == plain.count("Plotly.newPlot") + 4  # 2 + 2 figures
    assert len(page.encode()) < 1_500_000, len(page.encode())
    assert "<h2>Compare</h2>" not in plain and "Whole model" not in plain


def test_the_report_download_includes_compare_and_model_results_already_computed():
    from explorer.compare import cache as compare_cache
    from explorer.compare import state as CS
    from explorer.compare.runs import SWEEP_BITS, parse_entry
    from explorer.core import cache
    from explorer.core.pipeline import DataSettings
    from explorer.share.panel import report_extras

    cache.clear_all()
    settings = DataSettings(in_features=24, out_features=16, num_batches=2, batch_size=16)
    text = Path(CONFIG).read_text()
    state = {CS.COMPARE_ENTRIES: (("A", text), ("B", text.replace("bits: 8", "bits: 4", 1)),
                                  ("bad", "weight: [\n"))}
    configs = parse_entry("A", text).configs
    assert report_extras(state[CS.COMPARE_ENTRIES], configs, settings, {}) == {
        "compare_runs": None, "compare_sweeps": None, "model": None}  # nothing computed yet
    run = compare_cache.compare_run(configs, settings)
    sweep = compare_cache.compare_sweep(configs, settings, SWEEP_BITS)
    extras = report_extras(state[CS.COMPARE_ENTRIES], configs, settings, {})
    assert extras["compare_runs"] == {"A": run} and extras["compare_sweeps"] == {"A": sweep}
    assert extras["model"] is None
    cache.clear_all()


def test_the_report_embeds_plotlys_cartesian_bundle_of_the_installed_version():
    import gzip

    from plotly.offline import get_plotlyjs

    from explorer.core import plotly_bundle as B
    from explorer.share import report_html as R

    vendored = gzip.decompress(B.CARTESIAN_BUNDLE.read_bytes()).decode()
    assert B.plotly_js_version(vendored) == B.plotly_js_version(get_plotlyjs())
    assert B.plotly_js_version(vendored).count(".") == 2
    for trace in ("scatter", "bar", "heatmap"):  # every trace type our figures use
        assert f'"{trace}"' in vendored
    cartesian = R.plotly_js_gzip_b64(frozenset({"scatter", "bar", "heatmap"}))
    full = R.plotly_js_gzip_b64(frozenset({"scatter", "indicator"}))  # not in the bundle
    assert len(cartesian) < 0.5 * len(full)
    assert full == R.plotly_js_gzip_b64(frozenset({"scatter3d"}))
