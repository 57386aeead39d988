"""A real browser for the UI tests: Playwright driving Debian's Chromium (never a downloaded one).

Every page opened through :func:`open_page` is watched from its first request: a console error, an
uncaught exception, a request that failed (refused, aborted, blocked by the Content-Security-Policy)
or answered with a status >= 400 is recorded, and :meth:`WatchedPage.check` fails the test with the
list. A test that expects one failure (a bad filter answered 400) names it in ``allow``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Page,
        Request,
        Response,
        ViewportSize,
    )

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium executable; skips the test, saying why, when it or Playwright is missing."""
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (the test extra)"
    )
    path = chromium_path()
    if path is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium; scripts/system-deps.sh does it)",
            allow_module_level=True,
        )
    return path


@contextmanager
def launch_browser() -> Iterator[Browser]:
    """Headless Chromium for one test module; ``--no-sandbox`` only when running as root."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class WatchedPage:
    """A page and every problem seen on it since it was opened."""

    page: Page
    allow: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)

    def _allowed(self, url: str) -> bool:
        return any(re.search(pattern, url) for pattern in self.allow)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            where = (
                f" ({location.get('url', '')}:{location.get('lineNumber', '')})" if location else ""
            )
            if not self._allowed(location.get("url", "") if location else ""):
                self.problems.append(f"console error: {message.text}{where}")

    def _on_page_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def _on_request_failed(self, request: Request) -> None:
        if not self._allowed(request.url):
            self.problems.append(
                f"request failed: {request.method} {request.url} ({request.failure})"
            )

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 and not self._allowed(response.url):
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def check(self) -> None:
        """Fails the test when anything went wrong on the page so far."""
        if self.problems:
            pytest.fail("the page had problems:\n  " + "\n  ".join(self.problems), pytrace=False)

    def screenshot(self, name: str) -> Path:
        """A full-page screenshot kept under test-artifacts/ui/ for people to look at."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def open_page(browser: Browser, url: str, *, allow: tuple[str, ...] = ()) -> Iterator[WatchedPage]:
    """Opens ``url`` in a fresh context and page, watched from the first request."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    watched = WatchedPage(page, allow=allow)
    page.on("console", watched._on_console)
    page.on("pageerror", watched._on_page_error)
    page.on("requestfailed", watched._on_request_failed)
    page.on("response", watched._on_response)
    try:
        page.goto(url, wait_until="load")
        yield watched
    finally:
        context.close()
