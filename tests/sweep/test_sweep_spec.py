"""The sweep's spec: Hydra's grid syntax, random draws repeated from their root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replicator.errors import ConfigError, UsageError
from replicator.sweep.spec import parse_sweep, render_value

from ..conftest import run_cli
from .core_helpers import make_project, runs, sweep_records


def test_grid_follows_hydra_syntax_times_seeds() -> None:
    spec = parse_sweep(
        ["optim.lr=0.1,0.01", "layers=range(1,4)", "p=range(0,1,step=0.25)",
         "act=choice(relu,gelu)", "batch=64"],
        seeds=2,
    )  # fmt: skip
    assert [a.values for a in spec.axes] == [
        (0.1, 0.01),
        (1, 2, 3),
        (0.0, 0.25, 0.5, 0.75),
        ("relu", "gelu"),
    ]
    assert spec.fixed == ("batch=64",)
    points = spec.points(root=3, seeds=[11, 12])
    assert len(points) == spec.size == 2 * 3 * 4 * 2 * 2
    assert points[0].overrides == ("batch=64", "optim.lr=0.1", "layers=1", "p=0.0", "act=relu")
    assert [p.seed for p in points[:4]] == [11, 12, 11, 12]
    assert len({p.overrides for p in points}) == spec.size // 2


def test_values_read_back_as_themselves() -> None:
    from replicator.config import parse_override

    values = ["small", "1", "a b", "", "x: y", 0.1, 1e-5, 2.5e20, 3, True, None, [1, "x"], {"a": 1}]
    for value in values:
        assert parse_override(f"k={render_value(value)}").value == value, value


def test_random_draw_repeats_from_its_root(repo: Path) -> None:
    store = make_project(repo)
    args = ["sweep", "-c", "cfg.yaml", "--sample", "x=loguniform(1e-3,10)"]
    args += ["--sample", "model=choice(small,big)", "--trials", "2", "--seed-root", "1234"]
    dry = run_cli(*args, "--dry-run", "--", "python", "train.py")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == run_cli(*args, "--dry-run", "--", "python", "train.py").stdout
    other = run_cli(*args[:-1], "99", "--dry-run", "--", "python", "train.py")
    assert other.stdout != dry.stdout
    assert not (store / "runs").exists()  # a dry run writes nothing

    result = run_cli(*args, "-j", "2", "--", "python", "train.py")
    assert result.returncode == 0, result.stderr
    (record,) = sweep_records(store)
    assert record["root"] == "1234"
    assert record["spec"]["sample"] == ["x=loguniform(1e-3,10)", "model=choice(small,big)"]
    listed = [line.split("\t") for line in dry.stdout.splitlines()]
    by_index = {r["seeding"]["index"]: r for r in runs(store)}
    for index, seed, overrides in listed:
        run = by_index[int(index)]
        assert seed == f"seed={run['seed']}"
        wanted = dict(o.split("=", 1) for o in overrides.split(" "))
        assert run["config"]["x"] == float(wanted["x"]) and 1e-3 <= run["config"]["x"] <= 10
        assert run["config"]["model"] == wanted["model"]


def test_run_with_several_values_points_at_sweep(repo: Path) -> None:
    store = make_project(repo)
    result = run_cli("run", "-c", "cfg.yaml", "--set", "x=1,2", "--", "python", "train.py")
    assert result.returncode == 2
    assert "Override 'x=1,2' lists several values" in result.stderr
    assert "replicator sweep --set x=1,2" in result.stderr
    assert "x=[1,2]" in result.stderr and "x='1,2'" in result.stderr
    assert not (store / "runs").exists()
    quoted = run_cli("run", "-c", "cfg.yaml", "--set", "model='a,b'", "--", "python", "-c", "0")
    assert quoted.returncode == 0, quoted.stderr
    (run,) = runs(store)
    assert run["config"]["model"] == "a,b"


@pytest.mark.parametrize(
    ("sets", "samples", "options", "message"),
    [
        (["x=range(1"], [], {}, r"Sweep override 'x=range\(1' cannot be parsed"),
        (["x=interval(0,1)"], [], {}, r"--sample x=uniform"),
        ([], ["x=normal(0,1)"], {"trials": 2}, r"unknown distribution 'normal'"),
        ([], ["x=uniform(1,0)"], {"trials": 2}, r"LOW must be below HIGH"),
        ([], ["x=uniform(0,1)"], {}, r"--sample needs --trials"),
        (["x=1,2", "x=3,4"], [], {}, r"gives 'x' more than once"),
    ],
)
def test_bad_specs_name_the_value(
    sets: list[str], samples: list[str], options: dict[str, int], message: str
) -> None:
    with pytest.raises((ConfigError, UsageError), match=message):
        parse_sweep(sets, samples, **options)  # type: ignore[arg-type]


def test_sweep_record_json_is_plain(repo: Path) -> None:
    """`sweep ls --json` reads the records back (a `run --seeds` sweep included)."""
    store = make_project(repo)
    result = run_cli("run", "-c", "cfg.yaml", "--seeds", "2", "--", "python", "train.py")
    assert result.returncode == 0, result.stderr
    listed = json.loads(run_cli("sweep", "ls", "--json").stdout)
    assert [(s["kind"], s["jobs"]) for s in listed] == [("seeds", 2)]
    states = json.loads(run_cli("sweep", "status", "last", "--json").stdout)["jobs"]
    assert [j["state"] for j in states] == ["completed", "completed"]
    assert len(runs(store)) == 2
