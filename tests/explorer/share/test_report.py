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
