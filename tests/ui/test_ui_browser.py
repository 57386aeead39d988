"""The pages of ``replicator ui`` in a real browser (Debian's Chromium driven by Playwright).

Each test opens pages of the real server over the real store of ``conftest.py`` and fails on any
console error, page error or failed request (see ``browser.py``). Screenshots of every page are
kept under test-artifacts/ui/ for people to look at.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pytest

from .browser import launch_browser, open_page, require_chromium
from .conftest import SECRET, UiServer, UiStore, clean_env, start_ui, stop

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

require_chromium()  # the whole module is skipped, with the reason, without Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_browser() as browser:
        yield browser


def shown_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "[data-testid=runs-row]", "rows => rows.map(r => r.dataset.runId)"
    )


def column(page: Page, key: str) -> list[str]:
    """The texts of one column of the runs table, in the order shown."""
    return page.evaluate(
        """key => {
            const headers = [...document.querySelectorAll('#runs-head th')];
            const index = headers.findIndex(th => th.dataset.key === key);
            return [...document.querySelectorAll('[data-testid=runs-row]')]
                .map(row => row.children[index].textContent);
        }""",
        key,
    )


def wait_rows(page: Page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=runs-row]').length === n", arg=count
    )


def test_every_page_renders_without_errors(
    browser: Browser, ui_server: UiServer, ui_store: UiStore
) -> None:
    ids = ui_store.ids
    every_run = [i for role in ids.values() for i in role]
    with open_page(browser, ui_server.url) as runs:
        wait_rows(runs.page, len(every_run))
        assert set(shown_ids(runs.page)) == set(every_run)
        damaged = runs.page.locator(f"[data-run-id='{ids['damaged'][0]}']")
        assert "damaged" in (damaged.get_attribute("class") or "")
        assert damaged.locator(".status").inner_text() == "damaged"
        runs.check()
        runs.screenshot("runs")

    b = ids["b"][0]
    with open_page(browser, f"{ui_server.base}/runs/{b}") as run:
        page = run.page
        page.wait_for_selector("[data-testid=metric-chart][data-key=loss][data-points='30']")
        assert page.get_by_test_id("run-status").inner_text() == "completed"
        assert "trained 30 steps" in page.get_by_test_id("output-tail").inner_text()
        assert "+# tuned for config b" in page.locator("#code pre.patch").inner_text()
        assert page.locator("#code table.list td", has_text="train.py").count() == 1
        assert page.locator("canvas").count() >= 2  # uPlot drew loss and acc
        checkpoints = page.locator("#checkpoints tbody tr")
        assert checkpoints.count() >= 1
        page.get_by_test_id("verify-checkpoints").click()
        page.wait_for_selector("#checkpoints .verdict .ok")
        assert checkpoints.locator(".verdict .ok").count() == checkpoints.count()
        run.check()
        run.screenshot("run")

    for role in ("damaged", "damaged_field", "failed", "secret"):
        with open_page(browser, f"{ui_server.base}/runs/{ids[role][0]}") as run:
            run.page.wait_for_selector("[data-testid=run-status] .status")
            run.page.wait_for_selector("#sections section.panel")
            status = run.page.get_by_test_id("run-status").inner_text()
            if role.startswith("damaged"):
                assert status == "damaged"
                assert "damaged" in run.page.get_by_test_id("damaged").inner_text()
            else:
                assert status == ("failed" if role == "failed" else "completed")
            assert SECRET not in run.page.content()  # the record is shown redacted
            run.check()
            if role == "damaged":
                run.screenshot("run-damaged")

    compared = [*ids["a"], *ids["b"]]
    with open_page(browser, f"{ui_server.base}/compare?ids={','.join(compared)}") as compare:
        page = compare.page
        page.wait_for_selector("[data-testid=overlay-chart][data-series='4']")
        page.wait_for_selector("[data-testid=group-chart][data-groups='2']")
        titles = page.eval_on_selector_all(
            "[data-testid=diff-section]", "s => s.map(x => x.dataset.title)"
        )
        assert titles[0] == "Environment"
        assert "Config" in titles and "Code" in titles
        code = page.locator("[data-testid=diff-section][data-title=Code]")
        code.locator("details.changed-file summary").first.click()
        assert "+# tuned for config b" in code.locator("pre.patch").first.inner_text()
        compare.check()
        compare.screenshot("compare")

    with open_page(browser, f"{ui_server.base}/experiments/ui") as experiment:
        page = experiment.page
        page.wait_for_selector("[data-testid=scatter] circle.point", state="attached")
        page.select_option("[data-testid=metric-key]", "loss")
        # a flat line has no height, which Playwright calls invisible: wait for it in the DOM
        page.wait_for_selector("[data-testid=parallel-coords] path.line", state="attached")
        # a point and a line for every run that logged a loss: all but the damaged ones
        whole = [
            i for role, run_ids in ids.items() if not role.startswith("damaged") for i in run_ids
        ]
        assert page.locator("[data-testid=scatter] circle.point").count() == len(whole)
        assert page.locator("[data-testid=parallel-coords] path.line").count() == len(whole)
        experiment.check()
        experiment.screenshot("experiment")


def test_filter_sort_group_select_and_compare_by_clicking(
    browser: Browser, ui_server: UiServer, ui_store: UiStore
) -> None:
    ids = ui_store.ids
    total = sum(len(v) for v in ids.values())
    bad = "config.lr <"
    # the bad filter is answered 400 on purpose (and Chromium logs that response)
    with open_page(browser, ui_server.url, allow=(r"/api/runs\?where=config\.lr",)) as runs:
        page = runs.page
        wait_rows(page, total)

        page.get_by_test_id("filter-input").fill("config.lr < 0.05")
        page.get_by_test_id("filter-input").press("Enter")
        wait_rows(page, 2)
        assert set(shown_ids(page)) == set(ids["b"])
        assert "where=config.lr" in page.url

        page.get_by_test_id("filter-input").fill(bad)
        page.get_by_test_id("filter-input").press("Enter")
        error = page.get_by_test_id("filter-error")
        error.wait_for(state="visible")
        cli = subprocess.run(
            [sys.executable, "-m", "replicator", "ls", "--where", bad],
            cwd=ui_store.project,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode != 0
        assert error.inner_text().strip() in cli.stderr + cli.stdout
        assert len(shown_ids(page)) == 2  # the last good filter still applies

        page.get_by_test_id("filter-input").fill("")
        page.get_by_test_id("filter-input").press("Enter")
        wait_rows(page, total)
        assert error.is_hidden()

        header = page.locator("[data-testid=sort-header][data-key=seed]")
        header.click()
        seeds = [int(s) for s in column(page, "seed") if s]
        assert seeds == sorted(seeds) and len(seeds) == 7  # the damaged runs have none
        header.click()
        seeds = [int(s) for s in column(page, "seed") if s]
        assert seeds == sorted(seeds, reverse=True)
        assert header.get_attribute("aria-sort") == "descending"

        page.get_by_test_id("group-toggle").check()
        groups = page.locator("[data-testid=group-row]")
        assert groups.count() >= 2
        order = page.eval_on_selector_all(
            "#runs-body tr:not(.spacer)",
            "rows => rows.map(r => r.dataset.group ? 'group' : r.dataset.runId)",
        )
        # the two runs of config b sit together right under their group's header
        first_b = min(order.index(i) for i in ids["b"])
        assert order[first_b - 1] == "group"
        assert {order[first_b], order[first_b + 1]} == set(ids["b"])
        page.get_by_test_id("group-toggle").uncheck()

        compare = page.get_by_test_id("compare-button")
        assert compare.is_disabled()
        chosen = [*ids["a"], *ids["b"]]
        for run_id in chosen:
            page.locator(f"[data-run-id='{run_id}'] input[type=checkbox]").check()
        assert compare.inner_text() == "Compare (4)"

        with page.expect_download() as csv_download:
            page.get_by_test_id("export-csv").click()
        lines = Path(csv_download.value.path()).read_text().splitlines()
        assert lines[0].startswith("id,experiment,name,status,seed")
        assert len(lines) == 1 + total

        with page.expect_download() as report_download:
            page.get_by_test_id("report-button").click()
        report = Path(report_download.value.path()).read_text()
        assert "<html" in report.lower() and ids["a"][0] in report

        compare.click()
        page.wait_for_url("**/compare?ids=*")
        assert set(parse_qs(urlparse(page.url).query)["ids"][0].split(",")) == set(chosen)
        page.wait_for_selector("[data-testid=overlay-chart][data-series='4']")
        assert page.locator("[data-testid=diff-section]").count() >= 3
        runs.check()


def test_pages_keep_working_behind_a_token(browser: Browser, ui_store: UiStore) -> None:
    """Opened once with ?token=, every later request (scripts, API, event stream) rides on the
    cookie the server set; a link followed without the token still works."""
    with start_ui(ui_store.store, "--token", "page-token-1234") as server:
        assert server.token == "page-token-1234"
        with open_page(browser, server.url) as runs:
            page = runs.page
            page.wait_for_selector("[data-testid=runs-row]")
            page.locator(f"[data-run-id='{ui_store.one('running')}'] a").first.click()
            page.wait_for_selector("[data-testid=metric-chart][data-key=loss][data-points]")
            assert "token" not in page.url
            assert page.get_by_test_id("run-status").inner_text() == "running"
            runs.check()
        with open_page(browser, f"{server.base}/", allow=(r"/",)) as refused:
            assert refused.page.evaluate("document.body.innerText").count("token") >= 1
            assert not refused.page.locator("[data-testid=runs-row]").count()


SLOW = """\
import os, time
import replicator

gate = os.environ["UI_GATE"]
run = replicator.start()
for step in range(4):
    while not os.path.exists(os.path.join(gate, str(step))):
        time.sleep(0.02)
    run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.flush()
    print(f"logged step {step}", flush=True)
"""


def test_a_running_run_shows_new_points_without_a_reload(browser: Browser, tmp_path: Path) -> None:
    env = clean_env(UI_GATE=str(tmp_path / "gate"))
    project = tmp_path / "live"
    project.mkdir()
    (tmp_path / "gate").mkdir()
    (project / "slow.py").write_text(SLOW)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, env=env, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "slow"], cwd=project, env=env, check=True)
    gate = tmp_path / "gate"
    (gate / "0").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator", "run", "-e", "live", "--", "python", "slow.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        runs = project / ".replicator" / "runs"
        deadline = time.monotonic() + 60
        while not (metrics := next(runs.glob("*/metrics.jsonl"), None)) or not metrics.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        run_id = metrics.parent.name
        with (
            start_ui(project / ".replicator") as server,
            open_page(browser, f"{server.base}/runs/{run_id}") as run,
        ):
            page = run.page
            chart = "[data-testid=metric-chart][data-key=loss]"
            page.wait_for_selector(f"{chart}[data-points='1']")
            assert page.get_by_test_id("run-status").inner_text() == "running"
            for step in (1, 2):
                (gate / str(step)).touch()
                # the point and the line printed with it arrive within 2 s, with no reload
                page.wait_for_selector(f"{chart}[data-points='{step + 1}']", timeout=2000)
                page.wait_for_function(
                    "text => document.querySelector('[data-testid=output-tail]').textContent"
                    ".includes(text)",
                    arg=f"logged step {step}",
                    timeout=2000,
                )
            run.screenshot("run-live")
            (gate / "3").touch()
            proc.wait(timeout=60)
            page.wait_for_selector("[data-testid=run-status] [data-status=completed]", timeout=2000)
            assert page.locator(chart).get_attribute("data-points") == "4"
            assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
            run.check()
    finally:
        if proc.poll() is None:
            stop(proc)
        elif proc.stdout is not None:
            proc.stdout.close()
