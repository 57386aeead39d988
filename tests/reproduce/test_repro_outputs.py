"""Output files across a run and its reproduction: paired by their place in a timestamped run
folder, results deciding and logs reported, what the user names with --outputs or --metrics
deciding instead, and an unreadable checkpoint manifest never taken as equal."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from repro_helpers import git

from replicator.reproduce import reproduce
from replicator.store import Store

# writes into runs/<date>_<time>/ like Hydra: a result that embeds its folder, a config dump
# that embeds the checkout and the time, and a log that holds the process id
STAMPED = """\
import datetime, json, os, random
from pathlib import Path

now = datetime.datetime.now()
out = Path("runs") / now.strftime("%Y-%m-%d_%H-%M-%S")
out.mkdir(parents=True)
random.seed(int(os.environ["REPLICATOR_SEED"]))
value = random.random()
(out / "metrics.json").write_text(json.dumps({"value": value, "folder": str(out.resolve())}))
(out / "config.yaml").write_text(f"cwd: {os.getcwd()}\\nstarted: {now.isoformat()}\\n")
(out / "train.log").write_text(f"[{now}] pid {os.getpid()} value {value}\\n")
"""

RUN = "runs/<time>"


def _quiet() -> dict[str, io.BytesIO]:
    return {"stdout": io.BytesIO(), "stderr": io.BytesIO()}


def test_timestamped_outputs_are_paired_and_logs_do_not_decide(project: Path, record, cli) -> None:
    (project / "train.py").write_text(STAMPED)
    (project / ".gitignore").write_text("runs/\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "stamped outputs")
    run_id = record(Path(sys.executable))

    result = reproduce(run_id, env="current", **_quiet())

    checks = {c.name: c for c in result.checks}
    assert set(checks) == {f"{RUN}/metrics.json", f"{RUN}/config.yaml", f"{RUN}/train.log"}
    result_file = checks[f"{RUN}/metrics.json"]
    assert (result_file.status, result_file.role) == ("equivalent", "result")
    assert result_file.detail == "differs only in embedded paths or timestamps"
    assert (checks[f"{RUN}/config.yaml"].status, checks[f"{RUN}/config.yaml"].role) == (
        "equivalent",
        "log",
    )
    log = checks[f"{RUN}/train.log"]
    assert (log.status, log.role) == ("mismatch", "log")  # another pid: reported, not deciding
    assert result.verdict == "reproduced", result.as_dict()
    assert result.decided_by == (
        f"1 output file matched (output {RUN}/metrics.json: differs only in embedded paths or "
        "timestamps); 2 not deciding (logs, config dumps, files not selected), of which 1 differs"
    )

    # show names the run it reproduces, and says that the temporary checkout is gone
    shown = cli("show", result.run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"reproduction of:       {run_id} (verdict: reproduced, --env current)" in shown.stdout
    assert "(the reproduction's temporary checkout, removed;" in shown.stdout
    assert not Path(result.as_dict()["stages"][1]["detail"].rsplit(" at ", 1)[1]).exists()
    # diff shows the output hashes that differ, the log marked as such
    diff = cli("diff", run_id, result.run_id)
    assert diff.returncode == 0, diff.stderr
    outputs = diff.stdout.split("\noutputs\n", 1)[1]
    assert f"  {RUN}/metrics.json: blake3:{checks[f'{RUN}/metrics.json'].original}" in outputs
    assert f"  {RUN}/train.log (log or config dump): blake3:" in outputs

    # --outputs: the user says the log decides; the verdict names it
    out = cli("reproduce", run_id, "--env", "current", "--outputs", "*.log")
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"Decided by: output {RUN}/train.log: content differs" in out.stdout
    assert "[not selected: does not decide]" in out.stdout
    assert "Verdict: NOT REPRODUCED" in out.stdout

    # --metrics names output files too: only metrics.json decides
    only = reproduce(run_id, env="current", metrics=["metrics.json"], **_quiet())
    assert only.verdict == "reproduced"
    assert [c.name for c in only.checks if c.decides] == [f"{RUN}/metrics.json"]


CHECKPOINTED = """\
import numpy as np

import replicator

with replicator.start() as run:
    w = np.arange(4, dtype=np.float64) * run.seed
    run.checkpoint({"w": w}, step=1)
    run.summary["w0"] = float(w[1])
"""


def test_unreadable_checkpoint_manifest_cannot_be_compared(project: Path, record) -> None:
    (project / "train.py").write_text(CHECKPOINTED)
    run_id = record(Path(sys.executable))
    manifest = Store.open().resolve(run_id) / "checkpoints" / "manifest.json"
    assert json.loads(manifest.read_text())["checkpoints"]
    manifest.write_text('{"checkpoints": [')  # cut short

    result = reproduce(run_id, env="current", **_quiet())

    assert result.verdict == "cannot compare" and result.exit_code == 1
    (unreadable,) = [c for c in result.checks if c.status == "cannot compare"]
    assert unreadable.name == "manifest.json"
    assert "the original's checkpoint manifest" in unreadable.detail
    assert result.decided_by.startswith("could not be read: checkpoint manifest.json")
