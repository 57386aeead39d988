"""Fuzzing the `--where` parser and the run-id resolver (issue 12, item 12): any text is either
accepted or refused with a QueryError / RunNotFoundError that names it; evaluating an accepted
expression on any run never raises."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from replicator.errors import QueryError, RunNotFoundError  # noqa: E402
from replicator.store import Store, compile_where  # noqa: E402

from ..report.report_fixtures import write_run  # noqa: E402

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKENS = [
    "config", "summary", ".", "acc", "lr", "optim", "status", "seed", "name", "dir", "x",
    "not", "and", "or", "(", ")", "[", "]", ",", "==", "!=", "<", "<=", ">", ">=", "in",
    "not in", "=", "-", "1", "0.5", "1e308", "-1e400", "'a'", '"b"', "None", "True", "false",
    "__import__", "lambda", "+", "*", "**", "[]", "{}", ":", "if", "else", "\x00", "é", "1" * 50,
]  # fmt: skip
# a prefix repeated up to 3,000 times: deep nesting
repeated = st.tuples(
    st.sampled_from(["not ", "(", "-", "[", "config.a", "summary.x and "]),
    st.integers(min_value=1, max_value=3000),
).map(lambda t: t[0] * t[1] + "1")
expression = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=20).map(" ".join), st.text(max_size=80), repeated
)
json_value = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.just(math.nan)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
record = st.fixed_dictionaries(
    {"id": st.text(max_size=5), "status": st.sampled_from(["completed", "failed"])},
    optional={
        "seed": json_value,
        "name": json_value,
        "config": st.dictionaries(st.sampled_from(["lr", "x", "optim", "acc"]), json_value),
        "summary": st.dictionaries(st.sampled_from(["acc", "x", "loss"]), json_value),
    },
)


@FUZZ
@given(where=expression, records=st.lists(record, max_size=3))
def test_where_fuzz(where: str, records: list[dict[str, Any]]) -> None:
    try:
        predicate = compile_where(where)
    except QueryError as exc:
        message = str(exc)
        assert message.startswith("--where '") and len(message) < 400, message
        return
    for rec in records:
        assert predicate(rec) in (True, False)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    root = tmp_path / ".replicator"
    for k, name in enumerate(["alpha", "beta", "beta"]):
        write_run(root, f"20261126-1200{k:02d}-00{k:02x}", seed=k, started=1764165000.0 + k)
        run_json = root / "runs" / f"20261126-1200{k:02d}-00{k:02x}" / "run.json"
        run_json.write_text(run_json.read_text().replace('"mlp-', f'"{name}-'))
    return Store(root)


refs = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["last", "latest", "last~", "last~1", "last~2", "last~3", "2026", "00", "-"]),
    st.tuples(st.sampled_from(["last~", "", "./", "/"]), st.text(max_size=20)).map("".join),
    st.integers(min_value=0).map(lambda n: f"last~{n}"),
    st.integers(min_value=1, max_value=5000).map(lambda n: "a" * n),
)


@FUZZ
@given(ref=refs)
def test_resolve_fuzz(store: Store, ref: str) -> None:
    try:
        found = store.resolve(ref)
    except RunNotFoundError as exc:
        message = str(exc)
        assert message and len(message) < 400 and "\n" not in message, message
        return
    assert (found / "run.json").is_file()
