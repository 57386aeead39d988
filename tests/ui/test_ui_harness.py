"""The browser harness of the UI tests catches broken pages: otherwise a green browser test would
prove nothing. A page with every kind of fault is opened from disk, and a page of the real server
whose data request fails is opened over HTTP; the harness must name each fault and fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .browser import launch_browser, open_page, require_chromium
from .conftest import UiServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

require_chromium()

BROKEN = """\
<!doctype html>
<html>
<head>
  <meta http-equiv="Content-Security-Policy" content="script-src 'self'">
  <script src="missing.js"></script>
  <script src="throws.js"></script>
  <script>document.title = "inline scripts are refused by the policy";</script>
</head>
<body><p>a broken page</p></body>
</html>
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_browser() as browser:
        yield browser


def test_the_harness_fails_on_script_errors_missing_files_and_refused_scripts(
    browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "broken.html").write_text(BROKEN)
    (tmp_path / "throws.js").write_text(
        'console.error("logged by the page");\nundefinedFunction();\n'
    )
    with open_page(browser, (tmp_path / "broken.html").as_uri()) as page:
        page.page.wait_for_timeout(200)
        problems = "\n".join(page.problems)
        assert "request failed" in problems and "missing.js" in problems
        assert "page error" in problems and "undefinedFunction" in problems
        assert "console error: logged by the page" in problems
        assert "Content Security Policy" in problems  # the inline script was refused
        with pytest.raises(pytest.fail.Exception, match="the page had problems"):
            page.check()


def test_the_harness_fails_when_the_server_answers_an_error(
    browser: Browser, ui_server: UiServer
) -> None:
    with open_page(browser, f"{ui_server.base}/runs/20000101-000000-none") as page:
        page.page.get_by_test_id("page-error").wait_for()  # the page says so, no blank page
        assert "20000101-000000-none" in page.page.get_by_test_id("page-error").inner_text()
        with pytest.raises(pytest.fail.Exception, match=r"HTTP 404: GET .*/api/runs/"):
            page.check()
    # the same page with that failure expected is clean: the harness is not failing on everything
    with open_page(
        browser, f"{ui_server.base}/runs/20000101-000000-none", allow=(r"/api/runs/2000",)
    ) as page:
        page.page.get_by_test_id("page-error").wait_for()
        page.check()
