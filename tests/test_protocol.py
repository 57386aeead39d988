"""The protocol between `replicator run` and its child: variables, ChildContext, exchanged files."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from pathlib import Path

import pytest

from replicator import _protocol as protocol
from replicator._protocol import ChildContext, ScriptConfig
from replicator.errors import ConfigError, SeedingError
from replicator.store import Store

from .conftest import git, run_cli

# A child that reports what it learned from the launcher.
REPORT = """\
import dataclasses, json, os
from replicator._protocol import ChildContext
context = ChildContext.from_environ()
print(json.dumps({
    "context": {k: str(v) if v is not None else None
                for k, v in dataclasses.asdict(context).items()},
    "environ": {k: os.environ.get(k) for k in context.to_environ()},
}))
"""


def test_child_context_round_trips_through_the_environment() -> None:
    full = ChildContext(
        run_dir=Path("/runs/r1"),
        run_id="r1",
        seed=7,
        config_path=Path("/p/cfg.yaml"),
        overrides=("optim.lr=0.1", "+extra=[1, 2]"),
        experiment_given=True,
        resume=True,
        deterministic=True,
    )
    minimal = ChildContext(run_dir=Path("/runs/r2"))
    for context in (full, minimal):
        assert ChildContext.from_environ(context.to_environ()) == context
    environ = full.to_environ()
    assert environ["PYTHONHASHSEED"] == environ["REPLICATOR_SEED"] == "7"
    assert environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert json.loads(environ["REPLICATOR_OVERRIDES"]) == ["optim.lr=0.1", "+extra=[1, 2]"]
    # every variable the launcher sets is one the protocol declares for its child
    declared = {v.name for v in protocol.CHILD_VARIABLES} | set(protocol.DETERMINISM_ENV)
    assert set(environ) <= declared


def test_no_run_dir_means_no_launcher() -> None:
    assert ChildContext.from_environ({}) is None
    assert ChildContext.from_environ({"REPLICATOR_RUN_DIR": "", "REPLICATOR_SEED": "3"}) is None


def test_variables_parse_their_text_and_name_themselves_in_errors() -> None:
    assert protocol.REPLICATOR_EXPERIMENT_GIVEN.get({"REPLICATOR_EXPERIMENT_GIVEN": "0"}) is False
    assert protocol.REPLICATOR_DEBUG.get({"REPLICATOR_DEBUG": "yes"}) is True
    assert protocol.REPLICATOR_DEBUG.get({}) is False
    assert protocol.REPLICATOR_OVERRIDES.get({}) == ()
    assert not protocol.REPLICATOR_STORE.is_set({"REPLICATOR_STORE": ""})
    with pytest.raises(SeedingError, match=r"\$REPLICATOR_SEED must be an integer, got 'x1'"):
        protocol.REPLICATOR_SEED.get({"REPLICATOR_SEED": "x1"})
    with pytest.raises(ConfigError, match=r"\$REPLICATOR_OVERRIDES is not a JSON list"):
        protocol.REPLICATOR_OVERRIDES.get({"REPLICATOR_OVERRIDES": "a=1"})


def test_exchanged_files_round_trip(tmp_path: Path) -> None:
    assert protocol.read_script_config(tmp_path) is None
    assert protocol.read_experiment(tmp_path) is None
    record = ScriptConfig(config={"lr": 0.1}, config_hash="abc", data={"train": {"hash": "h"}})
    path = protocol.write_script_config(tmp_path, record)
    assert path == tmp_path / "config" / "script.json"
    assert json.loads(path.read_text()) == {
        "config": {"lr": 0.1},
        "config_hash": "abc",
        "data": {"train": {"hash": "h"}},
    }
    assert protocol.read_script_config(tmp_path) == record
    protocol.write_experiment(tmp_path, "mlp")
    assert json.loads((tmp_path / "config" / "experiment.json").read_text()) == {
        "experiment": "mlp"
    }
    assert protocol.read_experiment(tmp_path) == "mlp"


def test_a_real_child_learns_its_context_from_replicator_run(repo: Path) -> None:
    (repo / "cfg.yaml").write_text("a: 1\n")
    (repo / "report.py").write_text(REPORT)
    proc = run_cli(
        "run", "-e", "given", "-c", "cfg.yaml", "--set", "a=2", "--seed", "5", "--",
        "python", "report.py", cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (record,) = Store.open(repo).records()
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["context"] == {
        "run_dir": str(record.dir),
        "run_id": record.id,
        "seed": "5",
        "config_path": str(repo / "cfg.yaml"),
        "overrides": "('a=2',)",
        "experiment_given": "True",
        "resume": "False",
        "deterministic": "False",
    }
    # what the child rebuilds from its context is exactly what it was given
    assert all(value is not None for value in seen["environ"].values())
    assert record.meta["child_env"]["REPLICATOR_EXPERIMENT_GIVEN"] == "1"


def test_a_reproduction_gives_the_child_the_protocol_afresh(repo: Path) -> None:
    """Regression: rerun copied the recorded variables by a hand-written list that missed
    REPLICATOR_EXPERIMENT_GIVEN; now no recorded protocol variable is handed on, and the new
    child learns its own context from the launcher."""
    from replicator.reproduce import reproduce
    from replicator.reproduce.rerun import restored_variables

    (repo / "train.py").write_text(
        "import replicator\n"
        "from replicator._protocol import ChildContext\n"
        "context = ChildContext.from_environ()\n"
        "with replicator.start({}) as run:\n"
        "    run.summary['given'] = int(context.experiment_given)\n"
        "    run.summary['seed'] = context.seed\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")
    from replicator.record.launch import RunSpec, launch

    (original,) = launch(
        RunSpec(command=(sys.executable, "train.py"), seed=4, experiment="given"),
        store=Store.open(),
        stdout=io.BytesIO(),
        stderr=io.BytesIO(),
    )
    meta = json.loads((original.dir / "run.json").read_text())
    assert meta["child_env"]["REPLICATOR_EXPERIMENT_GIVEN"] == "1"
    environment = json.loads((original.dir / "environment.json").read_text())
    handed_on, _ = restored_variables(meta, environment)
    assert not set(handed_on) & {v.name for v in protocol.CHILD_VARIABLES}

    result = reproduce(original.run_id, env="current", stdout=io.BytesIO(), stderr=io.BytesIO())
    assert result.verdict == "reproduced", result.as_dict()
    again = json.loads((result.run_dir / "run.json").read_text())
    assert again["experiment"] == "given" and again["reproduction_of"] == original.run_id
    assert again["child_env"]["REPLICATOR_EXPERIMENT_GIVEN"] == "1"
    assert again["child_env"]["REPLICATOR_RUN_DIR"] == str(result.run_dir)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary == {"given": 1, "seed": 4}


def test_child_context_is_frozen() -> None:
    context = ChildContext(run_dir=Path("/r"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.seed = 3  # type: ignore[misc]
