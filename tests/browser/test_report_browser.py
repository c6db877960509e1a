"""The standalone HTML report (``python -m explorer.report``) opens from disk in headless
Chromium, with no server and no network, and draws every plot.

Needs Debian's /usr/bin/chromium and the playwright package (see conftest.py): fails in CI
(``CI=true``) without them and is skipped elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import open_page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--in-features", "64", "--out-features", "48", "--num-batches", "2",
         "--batch-size", "32"]
MIN_PLOTS = 6  # histograms, error maps and per-channel views of weight and output, time, memory
PAGE_TIMEOUT_MS = 60_000
# What Plotly drew inside a plot's SVG: bars, lines/markers, heatmap images (a JS string).
MARKS = "'.cartesianlayer .trace path, .heatmaplayer image, .barlayer path'"


def test_cli_report_opens_offline_and_draws_every_plot(sync_playwright, tmp_path):
    report = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "explorer.report", "--config",
         str(REPO / "configs" / "attn_config.yaml"), "-o", str(report), *SMALL],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open_page(sync_playwright, 1400, 1000, PAGE_TIMEOUT_MS) as page:
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page_errors = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.goto(report.as_uri())
        page.wait_for_function(
            """(n) => [...document.querySelectorAll('.js-plotly-plot')]
                .filter(p => p.querySelector(MARKS)).length >= n""".replace("MARKS", MARKS),
            arg=MIN_PLOTS)
        drawn = page.evaluate(
            """() => [...document.querySelectorAll('.js-plotly-plot')].map(p => ({
                svgs: p.querySelectorAll('svg.main-svg').length,
                marks: p.querySelectorAll(MARKS).length,
                title: (p.querySelector('.gtitle') || {}).textContent || ''}))"""
            .replace("MARKS", MARKS))
        assert len(drawn) >= MIN_PLOTS, drawn
        assert all(plot["svgs"] > 0 and plot["marks"] > 0 for plot in drawn), drawn
        titles = " | ".join(plot["title"] for plot in drawn)
        for expected in ("Weight values", "Output quantization error", "Time per stage"):
            assert expected in titles, titles
        assert "qsnr" in page.locator("table").first.inner_text()  # the metrics table
        assert not page_errors, page_errors
        assert all(url.startswith("file://") for url in requests), requests  # offline
