"""Drive the real app in headless Chromium: it loads, plots, and reacts to a YAML edit.

Needs Debian's /usr/bin/chromium and the playwright package (never ``playwright install``).
Without them the test fails in CI (``CI=true``) and is skipped elsewhere.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import open_page, set_number_inputs

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "artifacts" / "explorer.png"
SERVER_START_TIMEOUT_S = 90
PAGE_TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture
def app_url(tmp_path):
    port = _free_port()
    log = tmp_path / "streamlit.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py",
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture
def page(sync_playwright, app_url):
    """A Chromium page on the running app (1600x1200, generous timeouts)."""
    with open_page(sync_playwright, 1600, 1200, PAGE_TIMEOUT_MS) as app_page:
        app_page.goto(app_url)
        yield app_page


def _metric_value(page, label: str) -> str:
    return page.locator(f'.ql-card[data-label="{label}"] .ql-card-value').inner_text()


CARD_AND_PAGE_COLOURS = """() => [
    getComputedStyle(document.querySelector('.ql-card-value')).color,
    getComputedStyle(document.querySelector('[data-testid="stMain"]')).color]"""


def test_metric_cards_take_the_page_text_colour_in_the_dark_theme(page, app_url):
    page.goto(f"{app_url}/?embed_options=dark_theme")
    page.locator(".ql-card-value").first.wait_for(state="visible")
    card, text = page.evaluate(CARD_AND_PAGE_COLOURS)
    assert card == text, (card, text)
    assert min(int(v) for v in re.findall(r"\d+", text)[:3]) > 150, text  # light on dark


def test_app_plots_and_reacts_to_a_weight_bits_edit(page):
    charts = page.locator('.js-plotly-plot')
    charts.nth(1).wait_for(state="visible")
    assert charts.count() == 2  # the open result view only: the two histograms
    before = _metric_value(page, "Weight QSNR")
    assert re.fullmatch(r"\d+\.\d+ dB", before), before
    # The histograms are updated in place (Plotly.react), not unmounted and drawn again: mark
    # the weight histogram once the first run has finished, edit, and find the mark again.
    page.wait_for_function(
        """() => { const plot = document.querySelector('.js-plotly-plot');
                   return plot !== null && plot.layout.title.text.startsWith('Weight values')
                          && !document.querySelector('[data-testid="stStatusWidget"]'); }""")
    page.evaluate("() => { document.querySelector('.js-plotly-plot').dataset.drawn = 'before'; }")

    editor = page.get_by_role("textbox", name="weight YAML", exact=True)
    text = editor.input_value()
    assert "bits: 8" in text
    editor.fill(text.replace("bits: 8", "bits: 4").replace("name: int8", "name: int4"))
    editor.press("Control+Enter")
    page.wait_for_function(
        """([label, before]) => [...document.querySelectorAll('.ql-card')]
            .some(m => m.innerText.includes(label)
                  && !m.innerText.includes(before))""",
        arg=["Weight QSNR", before],
    )
    page.wait_for_function(
        """() => { const plot = document.querySelector('.js-plotly-plot');
                   return plot !== null && plot.dataset.drawn === 'before'
                          && plot.layout.title.text.includes('int4'); }""")
    after = _metric_value(page, "Weight QSNR")
    assert re.fullmatch(r"\d+\.\d+ dB", after) and after != before

    assert float(after.split()[0]) < float(before.split()[0])  # 4 bits lose to 8
    # another view (a segmented control) draws its own plots
    page.get_by_role("radio", name="Error maps", exact=True).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]
            .filter(t => t.textContent.includes('quantization error')).length == 2""")
    page.get_by_role("radio", name="Histograms", exact=True).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot .gtitle')]
            .filter(t => t.textContent.includes('fp32 vs dequantized')).length == 2""")
    # The widget followed the YAML, and nothing crashed on the page.
    bits = page.get_by_role("spinbutton", name="Bits", exact=True).first
    assert bits.input_value() == "4"
    # The metrics download is built on click, from the results on screen (int4).
    page.get_by_role("button", name="Share & export").click()  # a popover in the sidebar
    with page.expect_download() as download:
        page.get_by_role("button", name="Metrics JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    weight = next(row for row in exported["tensors"] if row["tensor"] == "weight")
    assert f"{weight['qsnr']:.2f} dB" == after
    assert page.locator('[data-testid="stException"]').count() == 0
    # Streamlit scrolls inside its main container, so grow the viewport to the
    # content's height for a screenshot of the whole page.
    height = page.evaluate(
        """() => document.querySelector('[data-testid="stMainBlockContainer"]')
            .scrollHeight""")
    page.set_viewport_size({"width": 1600, "height": min(int(height) + 100, 8000)})
    page.wait_for_timeout(2000)  # let Plotly finish redrawing before the screenshot
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


COMPARE_NAMES = ["MinMax", "Percentile", "OMSE", "KL"]


def _open_tab(page, name: str, shows) -> None:
    """Click tab ``name`` until ``shows`` (a locator in it) is visible: a click that lands
    while a rerun is in flight can be undone when that rerun reports the old tab."""
    for _ in range(10):
        page.get_by_role("tab", name=name, exact=True).click()
        try:
            shows.wait_for(state="visible", timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: click again
            continue
    shows.wait_for(state="visible")


def test_compare_tab_classic_set_draws_four_named_series(page):
    # A small layer keeps the four calibrations and their sweeps quick (set at once:
    # the edit interrupts the first run on the default layer).
    set_number_inputs(page, (("In features", 96), ("Out features", 64), ("Batches", 4),
                             ("Batch size", 64)))
    classic = page.get_by_role("button", name="Classic set: MinMax vs Percentile vs "
                                             "OMSE vs KL")
    _open_tab(page, "Compare", classic)
    classic.click()
    # Every compare chart gets one series per config: read the plots' data arrays.
    page.wait_for_function(
        """(names) => [...document.querySelectorAll('.js-plotly-plot')]
            .filter(p => p.data && names.every(n => p.data.some(t => t.name === n)))
            .length >= 7""", arg=COMPARE_NAMES)
    traces = page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot')]
            .map(p => (p.data || []).map(t => t.name))""")
    full = [names for names in traces if set(COMPARE_NAMES) <= set(names)]
    assert len(full) == 7, traces  # 2 histograms, 2 clip curves, channels, sweep, Pareto
    sweep = next(names for names in full if any(n.startswith("ideal") for n in names))
    assert [n for n in sweep if n in COMPARE_NAMES] == COMPARE_NAMES * 2  # W and out
    # ... and the legends show them (legend entries are SVG text).
    legend = page.locator(".legendtext").evaluate_all(
        "items => items.map(item => item.textContent)")
    assert all(legend.count(name) >= 6 for name in COMPARE_NAMES), legend
    assert page.locator('[data-testid="stException"]').count() == 0
