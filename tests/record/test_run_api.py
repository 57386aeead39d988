"""`replicator.start()` under plain python: its own run, status on exit, crash, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import replicator
from replicator.errors import UsageError
from replicator.store import Store
from replicator.store.metrics import read_metrics


def py(cwd: Path, code: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60, **kw
    )


def test_plain_python_opens_its_own_run_and_records_the_same_things(repo: Path) -> None:
    (repo / "c.yaml").write_text("lr: 0.1\nnested:\n  a: 1\n")
    code = (
        "import replicator\n"
        "cfg = replicator.load_config('c.yaml', overrides=['lr=0.2'])\n"
        "with replicator.start(cfg, experiment='exp', name='n1', seed=5) as run:\n"
        "    run.log({'loss': 1.5}, step=0); run.log({'loss': 0.5})\n"
        "    run.summary['acc'] = 0.9\n"
    )
    proc = py(repo, code)
    assert proc.returncode == 0, proc.stderr
    assert "PYTHONHASHSEED was not set" in proc.stderr  # warned once
    (record,) = Store.open(repo).records()
    assert record.status == "completed" and record.experiment == "exp" and record.seed == 5
    assert record.config == {"lr": 0.2, "nested": {"a": 1}, "seed": 5}
    assert record.summary == {"loss": 0.5, "acc": 0.9}
    assert [(m["step"], m["value"]) for m in read_metrics(record.dir / "metrics.jsonl")] == [
        (0, 1.5),
        (1, 0.5),
    ]
    assert record.meta["launcher"] == "python"
    assert record.meta["python_hash_seed"].startswith("random")
    sources = json.loads((record.dir / "config" / "sources.json").read_text())
    assert sources["overrides"] == ["lr=0.2"] and sources["files"][0]["source"].endswith("c.yaml")
    for part in (
        "code.json",
        "environment.json",
        "hardware.json",
        "seeding.json",
        "config.yaml",
        "hparams.csv",
    ):
        assert (record.dir / part).is_file(), part
    assert json.loads((record.dir / "code.json").read_text())["commit"]


def test_pythonhashseed_set_before_start_is_recorded_as_fixed(repo: Path) -> None:
    env = {"PYTHONHASHSEED": "3", "PATH": "/usr/bin:/bin"}
    proc = py(repo, "import replicator\nwith replicator.start({}, seed=1): pass\n", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "PYTHONHASHSEED" not in proc.stderr
    (record,) = Store.open(repo).records()
    assert record.meta["python_hash_seed"] == "fixed (PYTHONHASHSEED=3 at interpreter start)"


@pytest.mark.parametrize(
    ("body", "status", "field", "code"),
    [
        ("raise ValueError('boom')", "failed", "ValueError: boom", 1),
        # Python ends an uncaught KeyboardInterrupt by killing itself with SIGINT
        ("raise KeyboardInterrupt", "interrupted", "KeyboardInterrupt", -signal.SIGINT),
        ("import sys; sys.exit(4)", "failed", "SystemExit(4)", 4),
        ("import sys; sys.exit(0)", "completed", None, 0),
    ],
)
def test_status_follows_how_the_block_ends(
    repo: Path, body: str, status: str, field: str | None, code: int
) -> None:
    proc = py(repo, f"import replicator\nwith replicator.start({{}}, seed=1):\n    {body}\n")
    assert proc.returncode == code, proc.stderr  # start() leaves the script's own exit alone
    (record,) = Store.open(repo).records()
    assert record.status == status
    assert record.meta.get("error") == field


def test_without_with_block_the_run_finishes_at_exit(repo: Path) -> None:
    proc = py(
        repo, "import replicator\nrun = replicator.start({'a': 1}, seed=2)\nrun.log({'x': 1})\n"
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = Store.open(repo).records()
    assert record.status == "completed" and record.summary == {"x": 1}


def test_sigterm_marks_interrupted_and_sigkill_reads_as_crashed(repo: Path) -> None:
    code = (
        "import replicator, time\nwith replicator.start({}, seed=1) as run:\n"
        "    print('ready', flush=True)\n    for i in range(600):\n        run.log({'i': i}); time.sleep(0.05)\n"
    )
    for signum, expected in ((signal.SIGTERM, "interrupted"), (signal.SIGKILL, "crashed")):
        with subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(1.3)  # at least one flush of metrics
            proc.send_signal(signum)
            killed = time.time()
            proc.communicate(timeout=30)
        record = Store.open(repo).records()[-1]
        assert record.status == expected, signum
        assert record.summary.get("i", -1) >= 0  # the summary followed the metrics
        # what was logged before the kill is readable, a torn line or not, with no gap, and
        # at most about a second (the flush interval) was lost
        entries = read_metrics(record.dir / "metrics.jsonl")
        assert [e["value"] for e in entries] == list(range(len(entries))), signum
        age = killed - max(e["time"] for e in entries)
        assert 0 <= age <= 1.5, f"{signum!r}: the newest line was {age:.2f} s old at the kill"


def test_a_second_open_run_is_refused(tmp_path: Path) -> None:
    with replicator.start({}, seed=1, store=tmp_path / "store") as run:
        with pytest.raises(UsageError, match="already open"):
            replicator.start({}, seed=2, store=tmp_path / "store")
        run.log({"a": 1})
    (record,) = Store(tmp_path / "store").records()
    assert record.status == "completed"


def test_start_seeds_python_numpy_and_exposes_a_generator(tmp_path: Path) -> None:
    import random

    import numpy as np

    draws = []
    for _ in range(2):
        with replicator.start({}, seed=123, store=tmp_path / "s") as run:
            draws.append((random.random(), np.random.rand(), run.rng.random()))
    assert draws[0] == draws[1]


def test_numpy_imported_after_start_is_seeded_too(tmp_path: Path) -> None:
    code = (
        "import sys, replicator\nrun = replicator.start({}, seed=9, store='s')\n"
        "assert 'numpy' not in sys.modules\nimport numpy as np\nprint(np.random.rand())\nrun.finish()\n"
    )
    outs = [py(tmp_path, code) for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr
    import numpy as np

    np.random.seed(9)
    assert float(outs[0].stdout) == float(outs[1].stdout) == np.random.rand()
