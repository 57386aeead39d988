"""`--where` and run ids given bad input (issue 12, items 10 and 11): a typo matches no run and
is warned about, and hostile input is one clear error, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from replicator.errors import QueryError, RunNotFoundError
from replicator.store import Store, compile_where

from ..conftest import run_cli


def one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert len(lines[0]) < 300
    assert "Traceback" not in proc.stderr and "bug in replicator" not in proc.stderr


@pytest.mark.parametrize(
    "where",
    ["summary.tets_acc", "not summary.tets_acc > 0.5", "not (summary.tets_acc == 1)"],
)
def test_where_on_a_path_no_run_has_matches_none_and_warns(
    experiment_store: Path, where: str
) -> None:
    proc = run_cli("ls", "--where", where)
    assert proc.returncode == 0, proc.stderr
    assert "match the filters" in proc.stdout
    assert "warning: no run has 'summary.tets_acc' (a typo?)" in proc.stderr
    assert run_cli("ls", "--where", where, "--json").stdout.strip() == "[]"


def test_a_run_without_the_path_matches_neither_a_test_nor_its_negation(
    experiment_store: Path,
) -> None:
    store = Store.open()
    # the failed run has no summary.test_acc; the crashed one has 0.1
    low = store.select(where="not summary.test_acc > 0.5")
    assert [r.status for r in low] == ["crashed"]
    high = store.select(where="summary.test_acc > 0.5")
    assert len(high) == 15 and all(r.status == "completed" for r in high)
    # `or` with a true side is still true for a run that lacks the path
    either = store.select(where="summary.test_acc > 0.5 or status == 'failed'")
    assert len(either) == 16


def test_where_nested_5000_deep_is_one_clear_error(experiment_store: Path) -> None:
    proc = run_cli("ls", "--where", "not " * 5000 + "seed == 1")
    one_line_error(proc, "nested more than 100 levels deep; write a simpler expression")
    proc = run_cli("ls", "--where", "(" * 5000 + "seed" + ")" * 5000)
    one_line_error(proc, "nested more than 100 levels deep")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("seed == 1\x00", "not a valid expression"),
        ("1" * 5000, "not a valid expression"),
        ("config." + "a." * 3000 + "b == 1", "nested more than 100 levels"),
        ("__import__('os').system('x' * 5000)", "is not allowed"),
    ],
)
def test_hostile_where_expressions_are_query_errors(where: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as info:
        compile_where(where)
    assert len(str(info.value)) < 300


def test_show_with_a_5000_character_run_id_is_one_clear_error(experiment_store: Path) -> None:
    proc = run_cli("show", "a" * 5000)
    one_line_error(proc, "No run 'aaaaaaaa")
    proc = run_cli("show", "last~" + "9" * 5000)
    one_line_error(proc, "has 17 run(s)")
    proc = run_cli("show", "a/" * 3000)
    one_line_error(proc, "No run 'a/a/a/")


def test_resolve_refuses_unusable_paths_as_ids(experiment_store: Path) -> None:
    store = Store.open()
    for ref in ("run\x00id", "x" * 5000, "last~" + "1" * 5000):
        with pytest.raises(RunNotFoundError):
            store.resolve(ref)
    assert store.resolve("last~1").name == "20261126-120015-00aa"
