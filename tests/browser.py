"""Shared set-up for the real-browser tests: Playwright driving Debian's chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def require_browser() -> None:
    """Skip locally when chromium is missing; in CI (CLICKATELL_REQUIRE_BROWSER=1) fail instead."""
    if shutil.which(CHROMIUM) and _playwright_available():
        return
    message = f"needs {CHROMIUM} (apt-get install chromium) and the playwright package"
    if os.environ.get("CLICKATELL_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def page() -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between browser steps are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 850})
        try:
            yield context.new_page()
        finally:
            # While Playwright's loop runs, the ORM keeps this thread's connections in a
            # context of their own; close them here, or one outlives the test database.
            connections.close_all()
            context.close()
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def screenshot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
