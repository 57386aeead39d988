"""The HTML report: content, self-containment, and a real render in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from replicator.report import build_report, render_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Injected into a copy of the page under test: records every error event (script errors and
# resources that fail to load) and, after load, the state of every image and table.
CHECKER = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src) || "error")), true);
window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.documentElement.setAttribute("data-check", JSON.stringify({
    errors: window.__errors,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40)),
    tables: document.querySelectorAll("table").length,
    result_rows: document.querySelectorAll("table.results tbody tr").length,
  }));
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Chromium is not installed (apt-get install chromium; scripts/system-deps.sh does it)"
    )


def render_in_chromium(
    page: Path, tmp_path: Path, *, screenshot: Path | None = None
) -> tuple[dict, list[str]]:
    """Load ``page`` headless; return the checker's findings and the console lines Chromium logged."""
    html = page.read_text(encoding="utf-8")
    # the report allows no scripts at all; the copy under test allows the one checker script
    html = html.replace(
        "style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    )
    html = html.replace("<head>", "<head>" + CHECKER, 1)
    probe = tmp_path / "probe.html"
    probe.write_text(html, encoding="utf-8")
    base = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    proc = subprocess.run(
        [*base, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-check="([^"]*)"', proc.stdout)
    assert match, f"page did not finish loading: {proc.stderr[-2000:]}"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    if screenshot is not None:
        subprocess.run(
            [
                *base,
                "--window-size=1100,2600",
                "--hide-scrollbars",
                f"--screenshot={screenshot}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return json.loads(unescape(match.group(1))), console


def test_report_content_and_self_containment(experiment_store: Path) -> None:
    report = build_report("mlp", by="model", metric="test_acc", baseline="model=linear")
    page = render_report(report)
    text = unescape(page)
    assert (
        "Welch's t-test of each group against linear (Δ: difference of means), Holm-corrected"
        in text
    )
    assert "5 seeds per model" in page and "95% t-interval" in page
    # excluded runs are listed with their status
    assert ">failed<" in page and ">crashed<" in page and "2 excluded" in page
    assert "Test CPU" in page and "3.11.9" in page  # environment summary
    assert "numpy" not in page.split("<h2>Environment</h2>")[1]  # no package dump
    assert "/home/alice" not in page  # no user paths in a report that may be shared
    # nothing is fetched: every src is inline data, no scripts, no external links
    assert (
        re.findall(r'src="(?!data:)', page) == []
        and "<script" not in page
        and "http://" not in page
    )
    assert len(report.figures) == 2  # interval plot + loss curves (test_acc has one step only)
    assert [r.group for r in report.table.rows] == ["cnn", "linear", "mlp"]


def test_report_renders_in_chromium_without_errors(experiment_store: Path, tmp_path: Path) -> None:
    chromium()
    page = tmp_path / "report.html"
    page.write_text(
        render_report(build_report("mlp", by="model", metric="test_acc", baseline="model=linear")),
        encoding="utf-8",
    )
    shot = tmp_path / "report.png"
    found, console = render_in_chromium(page, tmp_path, screenshot=shot)
    assert found["errors"] == [] and console == []
    assert found["images"] == 2 and found["broken"] == []
    assert (
        found["tables"] == 4 and found["result_rows"] == 3
    )  # results, runs, excluded, environment
    assert shot.stat().st_size > 20_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-screenshot.png")
    shutil.copy(page, ARTIFACTS / "report.html")


def test_chromium_check_catches_script_errors_and_broken_images(
    experiment_store: Path, tmp_path: Path
) -> None:
    chromium()
    html = render_report(build_report("mlp", by="model", metric="test_acc"))
    broken = html.replace(
        "</body>",
        '<img alt="broken" src="data:image/png;base64,AAAA"><script>notDefined()</script></body>',
    )
    page = tmp_path / "broken.html"
    page.write_text(broken, encoding="utf-8")
    found, console = render_in_chromium(page, tmp_path)
    assert found["broken"] == ["broken"]
    assert any("notDefined" in e for e in found["errors"])
    assert any("Uncaught ReferenceError" in line for line in console)


def test_environment_summary_of_recorded_runs_is_readable(tmp_path: Path) -> None:
    import replicator
    from replicator.report.build import environment_summary

    dirs = []
    for seed in (1, 2):
        with replicator.start({}, seed=seed, store=tmp_path / "store") as run:
            run.summary["acc"] = 0.5
        dirs.append(str(run.dir))
    rows = dict(environment_summary(dirs))
    assert rows["Python"].startswith(".".join(map(str, __import__("sys").version_info[:3])))
    assert "logical cores" in rows["CPU"]
    assert "GPUs" in rows and "Memory" in rows
    assert not any(k.startswith("environment.") for k in rows)  # curated, not flattened keys
