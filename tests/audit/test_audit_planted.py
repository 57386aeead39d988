"""The audit on planted scripts: each planted one has exactly one source of nondeterminism and
the audit must name it (the factor whose re-run changed the result, or the static finding at
its file:line, confirmed); each clean look-alike must pass with no confirmed finding.

All twelve audits run once, side by side (module fixture), through the real launcher."""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from replicator.audit import AuditReport, audit, format_audit

PLANTED = Path(__file__).with_name("planted")
PATTERN = r"step (?P<step>\d+) \| \w+ (?P<value>\S+)"

# script -> (the factor that must change the result, (rule, line) that must be confirmed)
SOURCES: dict[str, tuple[str, tuple[str, int] | None]] = {
    "set_order": ("hashseed", ("set-order", 5)),
    "clock_seed": ("clock", ("clock-seed", 6)),
    "unseeded_rng": ("entropy", ("unseeded-rng", 5)),
    "thread_reduction": ("threads", None),
    "completion_order": ("completion", ("as-completed", 16)),
    "listing_order": ("listing", ("unsorted-listing", 8)),
    "wall_clock_loop": ("clock", ("wall-clock-loop", 7)),
    "dataloader_aug": ("entropy", ("dataloader-workers", 22)),
}
CLEAN = [
    "clean_seeded_rng",
    "clean_threads_joined",
    "clean_dataloader_seeded",
    "clean_sorted_listing",
]
TORCH_SCRIPTS = {"dataloader_aug", "clean_dataloader_seeded"}


def _project(root: Path, name: str) -> Path:
    """A folder holding one script (and the shards the listing scripts read)."""
    folder = root / name
    folder.mkdir()
    shutil.copyfile(PLANTED / f"{name}.py", folder / f"{name}.py")
    if "listing" in name:
        (folder / "shards").mkdir()
        for i, value in enumerate([0.5, 3.25, 1.0, 7.75, 2.5, 9.0]):
            (folder / "shards" / f"part-{i}.txt").write_text(str(value))
    return folder


def _audit(root: Path, name: str) -> AuditReport | None:
    if name in TORCH_SCRIPTS and not _has("torch"):
        return None
    folder = _project(root, name)
    return audit(
        [sys.executable, f"{name}.py"],
        metric_pattern=PATTERN,
        cwd=folder,
        store=root / f"store-{name}",
        jobs=2,
    )


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AuditReport | None]:
    root = tmp_path_factory.mktemp("audit")
    names = [*SOURCES, *CLEAN]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(lambda n: _audit(root, n), names)))


def _report(reports: dict[str, AuditReport | None], name: str) -> AuditReport:
    report = reports[name]
    if report is None:
        pytest.skip("torch is not installed")
    return report


@pytest.mark.parametrize("name", list(SOURCES))
def test_audit_names_the_planted_source(reports: dict[str, AuditReport | None], name: str) -> None:
    report = _report(reports, name)
    text = "\n".join(format_audit(report))
    factor, finding = SOURCES[name]
    assert factor in report.sources, text
    if finding is not None:
        code, line = finding
        found = {(f.code, f.line): f for f in report.findings}
        assert (code, line) in found, text
        assert found[(code, line)].confirmed is True, text
        assert found[(code, line)].path == f"{name}.py"
        assert f"{name}.py:{line}  {code}  [confirmed]" in text
    assert not report.passed
    assert report.exit_code == 1


def test_hash_order_is_reproducible_only_under_replicator_run(
    reports: dict[str, AuditReport | None],
) -> None:
    report = _report(reports, "set_order")
    # replicator run pins PYTHONHASHSEED to the seed: the repeated runs agree...
    assert report.agreed
    # ...and the audit varies it itself and says what that means
    [hashseed] = [f for f in report.factors if f.name == "hashseed"]
    assert hashseed.changed
    assert "reproducible only under replicator run" in hashseed.note
    assert hashseed.divergence is not None
    assert (hashseed.divergence.kind, hashseed.divergence.name, hashseed.divergence.step) == (
        "metric",
        "value",
        0,
    )


def test_runs_that_differ_report_the_first_divergent_step(
    reports: dict[str, AuditReport | None],
) -> None:
    report = _report(reports, "clock_seed")
    assert not report.agreed
    assert report.divergence is not None
    assert (report.divergence.kind, report.divergence.name, report.divergence.step) == (
        "metric",
        "value",
        0,
    )
    # pinning the clock made the runs agree; releasing only the clock changed the result
    assert "clock ticking per call" in report.pinned
    statuses = {f.name: f.status for f in report.factors}
    assert statuses["clock"] == "changed"
    assert statuses["entropy"] == statuses["hashseed"] == "unchanged"


def test_thread_count_dependence_is_named(reports: dict[str, AuditReport | None]) -> None:
    report = _report(reports, "thread_reduction")
    assert report.agreed  # same machine, same thread count: the runs repeat
    assert "threads" in report.sources
    if len(os.sched_getaffinity(0)) > 1:  # one core fewer splits the sum differently
        assert "cores" in report.sources
    assert report.findings == ()  # nothing a static scan can see


@pytest.mark.parametrize("name", CLEAN)
def test_clean_look_alike_passes(reports: dict[str, AuditReport | None], name: str) -> None:
    report = _report(reports, name)
    text = "\n".join(format_audit(report))
    assert report.agreed, text
    assert report.sources == (), text
    assert not [f for f in report.findings if f.confirmed], text
    assert report.passed and report.exit_code == 0, text
    assert text.endswith("Verdict: REPEATABLE (the runs agreed; no factor changed the result)")
