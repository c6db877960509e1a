"""Issue 14: the Teach, Compare and Whole model tabs read well at 1400x1000 and 1024x768.

For each width, on one served app (a small layer keeps it quick), each tab is opened and
checked in headless Chromium:

- no horizontal overflow in the main column (its scrollWidth <= clientWidth);
- no clipped formula (each visible ``.katex-display``: scrollWidth <= clientWidth, and
  no wider than its column; 2 px of KaTeX strut overhang allowed);
- no truncated button label, and (at 1400 px) no table that scrolls sideways;
- every labelled widget shows a help tooltip icon (``[data-testid=stTooltipIcon]``);
- in the sensitivity chart, no text label overlaps another or a reference line, the
  axis stops at 100 % and each layer's accuracy is written under its name.

Screenshots go to docs/screenshots/<tab>-<width>.png. Needs Debian's /usr/bin/chromium and the
playwright package (see conftest.py); never ``playwright install``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import open_page, set_number_inputs
from tests.browser.test_browser import _open_tab, app_url  # noqa: F401 - app_url: a fixture

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
PAGE_TIMEOUT_MS = 180_000
SMALL_LAYER = (("In features", 96), ("Out features", 64), ("Batches", 4), ("Batch size", 64))
SIZES = [(1400, 1000), (1024, 768)]
TITLED = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .some(p => p.layout && ((p.layout.title || {}).text || '').includes(TITLE))"""
TABS = {  # tab -> (screenshot name, a JS test that its content is drawn)
    "Single layer": ("single-layer", TITLED.replace("TITLE", "'values: fp32 vs dequantized'")),
    "Teach": ("teach", """() => document.querySelectorAll('.katex-display').length >= 8
        && [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('5 ·'))"""),
    "Compare": ("compare", TITLED.replace("TITLE", "'Bit-width sweep'")),
    "Whole model": ("whole-model", "() => (" + TITLED.replace("TITLE", "'Sensitivity'")
                    + """)() && [...document.querySelectorAll('[data-testid="stWidgetLabel"]')]
                        .some(l => l.innerText.includes('Presets to compare'))"""),
}

# Everything measured in the open tab's panel (the visible top-level tab panel).
MEASURE = r"""() => {
  const visible = el => el.getClientRects().length > 0;
  const panel = [...document.querySelectorAll('[role="tabpanel"]')].filter(visible)[0];
  const main = document.querySelector('[data-testid="stMain"]');
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const describe = el => (el.innerText || el.textContent || '').trim().slice(0, 60);
  return {
    main: [main.scrollWidth, main.clientWidth],
    // A formula is clipped when its content is wider than its box or than the column
    // holding it; KaTeX's struts overhang the box by up to 2 px without hiding anything.
    katex: [...panel.querySelectorAll('.katex-display')].filter(visible)
      .filter(el => el.scrollWidth > el.clientWidth + 2
              || el.scrollWidth > el.parentElement.clientWidth + 2)
      .map(el => [describe(el).replace(/\s+/g, ' '), el.scrollWidth, el.clientWidth,
                  el.parentElement.clientWidth]),
    katexCount: [...panel.querySelectorAll('.katex-display')].filter(visible).length,
    buttons: [...panel.querySelectorAll('button')].filter(visible)
      .filter(b => [b, ...b.querySelectorAll('*')].some(wide)).map(describe),
    metrics: [...panel.querySelectorAll('[data-testid="stMetricValue"], .ql-card-value')]
      .filter(visible)
      .filter(el => [el, ...el.querySelectorAll('*')].some(wide)).map(describe),
    tables: [...panel.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
      .filter(visible).filter(wide).map(el => [el.scrollWidth, el.clientWidth]),
    labels: [...panel.querySelectorAll('[data-testid="stWidgetLabel"]')].filter(visible)
      .map(el => [describe(el), !!el.querySelector('[data-testid="stTooltipIcon"]')]),
  };
}"""

# Text boxes and reference-line boxes of the sensitivity chart (screen coordinates).
SENSITIVITY_BOXES = """() => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')]
    .find(p => p.layout && ((p.layout.title || {}).text || '').includes('Sensitivity'));
  if (!plot) return null;
  const box = el => { const r = el.getBoundingClientRect();
    return {text: (el.textContent || '').trim(), x0: r.left, y0: r.top, x1: r.right,
            y1: r.bottom}; };
  return {
    texts: [...plot.querySelectorAll('svg text')].filter(t => (t.textContent || '').trim())
      .map(box).filter(b => b.x1 > b.x0 && b.y1 > b.y0),
    lines: [...plot.querySelectorAll('.shapelayer path')].map(box),
    bars: [...plot.querySelectorAll('.xtick text')].map(box)
      .filter(b => b.text.includes('%')),
    yrange: plot.layout.yaxis.range,
  };
}"""


def _overlap(a: dict, b: dict, slack: float = 0.5) -> bool:
    return (a["x0"] < b["x1"] - slack and b["x0"] < a["x1"] - slack
            and a["y0"] < b["y1"] - slack and b["y0"] < a["y1"] - slack)


def _screenshot(page, path: Path, width: int, height: int) -> None:
    """The whole tab: the viewport grows to the main column's height (Streamlit scrolls
    inside it), then goes back."""
    full = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(int(full) + 120, 9000)})
    page.wait_for_timeout(2500)  # let Plotly redraw at the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(1000)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tabs_fit_explain_and_do_not_overlap(sync_playwright, app_url, size):  # noqa: F811
    width, height = size
    with open_page(sync_playwright, width, height, PAGE_TIMEOUT_MS) as page:
        page.goto(app_url)
        page.locator('.js-plotly-plot').first.wait_for(state="visible")
        set_number_inputs(page, SMALL_LAYER)
        problems = []
        for tab, (name, drawn) in TABS.items():
            _open_tab(page, tab, page.get_by_role("tab", name=tab, exact=True))
            _wait(page, drawn, f"{tab}: its content")
            _wait(page, """() => !document.querySelector('[data-testid="stSpinner"], '
                    + '[data-testid="stProgress"]')""", f"{tab}: spinners gone")
            page.wait_for_timeout(1500)
            found = page.evaluate(MEASURE)
            where = f"{tab} at {width}px"
            if found["main"][0] > found["main"][1] + 1:
                problems.append(f"{where}: main column overflows {found['main']}")
            if found["katex"]:
                problems.append(f"{where}: clipped formulas {found['katex']}")
            if found["buttons"]:
                problems.append(f"{where}: truncated buttons {found['buttons']}")
            if found["metrics"]:
                problems.append(f"{where}: truncated metric values {found['metrics']}")
            if width >= 1400 and found["tables"]:
                problems.append(f"{where}: tables scroll sideways {found['tables']}")
            bare = [label for label, has_help in found["labels"] if not has_help]
            if bare or not found["labels"]:
                problems.append(f"{where}: widgets without help {bare}")
            if tab == "Teach" and found["katexCount"] < 8:
                problems.append(f"{where}: only {found['katexCount']} formulas drawn")
            if tab == "Whole model":
                problems += _sensitivity_problems(page, where)
            if tab == "Single layer" and width >= 1400:  # the key plots above the fold
                chart = page.locator('.js-plotly-plot').first.bounding_box()
                if chart["y"] + chart["height"] / 2 > height:
                    problems.append(f"{where}: the first plot's middle is below the fold "
                                    f"({chart}, window height {height})")
            assert page.locator('[data-testid="stException"]').count() == 0, where
            _screenshot(page, SCREENSHOTS / f"{name}-{width}.png", width, height)
        assert not problems, "\n".join(problems)


def _wait(page, predicate: str, what: str) -> None:
    try:
        page.wait_for_function(predicate)
    except Exception as err:  # noqa: BLE001 - playwright's TimeoutError, said plainly
        pytest.fail(f"timed out waiting for {what}: {err}")


def _sensitivity_problems(page, where: str) -> list[str]:
    boxes = page.evaluate(SENSITIVITY_BOXES)
    if boxes is None:
        return [f"{where}: no sensitivity chart"]
    out = []
    if boxes["yrange"][1] > 100:
        out.append(f"{where}: sensitivity axis runs to {boxes['yrange'][1]} %")
    texts = boxes["texts"]
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if _overlap(a, b):
                out.append(f"{where}: sensitivity labels overlap: {a['text']!r} / "
                           f"{b['text']!r}")
    for text in texts:
        for line in boxes["lines"]:
            if _overlap(text, line, slack=0.0):
                out.append(f"{where}: label {text['text']!r} crosses a reference line")
    if len(boxes["bars"]) < 3:  # fc1..fc3, each with its accuracy under its name
        out.append(f"{where}: expected each layer's accuracy on the axis: {boxes['bars']}")
    return out
