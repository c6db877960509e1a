"""Shared helpers of the headless-Chromium tests: Debian's /usr/bin/chromium, its launch
arguments and the `sync_playwright` fixture (never ``playwright install``)."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def sync_playwright():
    """playwright's sync_playwright; fails in CI (``CI=true``) and skips elsewhere without
    /usr/bin/chromium or the playwright package. Requested before ``app_url``, so no server
    starts when the browser is missing."""
    missing = []
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright as api
    except ImportError:
        api = None
        missing.append("the playwright package")
    if missing:
        message = f"browser test needs {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return api


@contextmanager
def open_page(sync_playwright, width: int, height: int, timeout_ms: int):
    """A page of a freshly launched headless Chromium, closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def set_number_inputs(page, values) -> None:
    """Type each ``(label, value)`` into the sidebar number input of that label and press Enter,
    waiting until the page shows the value (each edit reruns the app)."""
    for label, value in values:
        box = page.get_by_role("spinbutton", name=label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        page.wait_for_function(
            """([label, value]) => [...document.querySelectorAll('input')]
                .some(i => i.getAttribute('aria-label') === label && i.value === value)""",
            arg=[label, str(value)])
