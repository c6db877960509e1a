"""In Chromium: pick every float format from the weight's Format widget; the histogram redraws
with the format's grid (E2M1's 15 levels for the fp4 formats), the Block scales view draws
its heatmap, and no exception reaches the page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import set_number_inputs
from tests.browser.test_browser import app_url, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

HISTOGRAM_TITLE = """(fmt) => [...document.querySelectorAll('.js-plotly-plot')]
    .some(p => p.layout && ((p.layout.title || {}).text || '')
          .includes('Weight values: fp32 vs dequantized<br><sup>' + fmt + ' ')
          && (!fmt.endsWith('fp4')
              || ((p.layout.title || {}).text || '').includes('15 quantization levels')))"""
# Every float format, NVFP4 last (the Block scales view is then checked on its 16-value blocks).
FORMATS = ("fp8_e4m3", "fp8_e5m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2",
           "mxint8", "mxfp4", "nvfp4")


def _pick_format(page, name: str) -> None:  # noqa: F811
    """Pick ``name`` in the weight's Format box. A rerun still running from the previous
    edit can redraw the box and close its list under the click, so pick until the weight
    histogram shows the format's grid."""
    box = page.locator('[class*="st-key-fields-weight"] [data-testid="stSelectbox"]').first
    for _ in range(4):
        _wait_idle(page)
        box.click()
        option = page.get_by_role("option", name=name, exact=True)
        try:
            option.click(timeout=10_000)
            page.wait_for_function(HISTOGRAM_TITLE, arg=name, timeout=30_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try again
            page.keyboard.press("Escape")
    pytest.fail(f"could not pick {name} in the Format box")


def _wait_idle(page) -> None:  # noqa: F811
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')""")


def test_picking_each_float_format_redraws_grid_and_block_scales(page):  # noqa: F811
    page.locator('.js-plotly-plot').nth(1).wait_for(
        state="visible")
    set_number_inputs(page, (("In features", 96), ("Out features", 64), ("Batches", 2),
                             ("Batch size", 64)))
    for name in FORMATS:
        _pick_format(page, name)
        assert page.locator('[data-testid="stException"]').count() == 0
    page.get_by_role("radio", name="Block scales", exact=True).click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot')]
            .some(p => p.layout && ((p.layout.title || {}).text || '')
                  .includes('Weight block scales (16 values each)'))""")
    assert page.locator('[data-testid="stException"]').count() == 0
