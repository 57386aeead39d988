"""A sweep of short jobs: `replicator sweep` (local executor, -j 2) vs Hydra multirun (joblib).

The same 100 jobs on both sides: a script that starts, logs 100 metrics and exits, one job per
value of ``i=range(0,100)``, two at a time.

- replicator: ``replicator sweep -c cfg.yaml --set i=range(0,100) -j 2 -- python job.py``; each
  job is a whole ``replicator run`` (its own process and recorded run: config, code snapshot,
  environment, metrics.jsonl), the script logs with ``run.log``.
- Hydra: ``python app.py -m i=range(0,100) hydra/launcher=joblib hydra.launcher.n_jobs=2``
  (hydra-joblib-launcher, Hydra's recommended local parallel launcher; its jobs run in reused
  joblib worker processes), the task writes its 100 metrics as JSON lines into its output dir.
- bare: ``python bare.py`` (the same loop writing JSON lines, no framework), one at a time.

Reported: the whole command's wall time (median of ``--repeat``, sides alternated) and the
overhead per job over the bare script: ``wall x 2 / jobs - bare``.

Run: .venv-bench/bin/python benchmarks/bench_sweep.py [--jobs 100] [--repeat 3]
(needs hydra-core and hydra-joblib-launcher in that environment: the bench extra)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PY = sys.executable
PARALLEL = 2

JOB = textwrap.dedent(
    """\
    import replicator

    cfg = replicator.load_config("cfg.yaml")
    run = replicator.start(cfg)
    for step in range(100):
        run.log({"loss": 1.0 / (step + 1 + cfg["i"])}, step=step)
    run.finish()
    """
)
BARE = textwrap.dedent(
    """\
    import json, sys

    i = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with open("metrics.jsonl", "w") as fh:
        for step in range(100):
            fh.write(json.dumps({"step": step, "key": "loss", "value": 1.0 / (step + 1 + i)}) + "\\n")
    """
)
APP = textwrap.dedent(
    """\
    import json

    import hydra


    @hydra.main(config_path=".", config_name="hcfg", version_base=None)
    def main(cfg):
        with open("metrics.jsonl", "w") as fh:
            for step in range(100):
                row = {"step": step, "key": "loss", "value": 1.0 / (step + 1 + cfg.i)}
                fh.write(json.dumps(row) + "\\n")


    if __name__ == "__main__":
        main()
    """
)


def _project(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "job.py").write_text(JOB)
    (root / "bare.py").write_text(BARE)
    (root / "app.py").write_text(APP)
    (root / "cfg.yaml").write_text("i: 0\n")
    (root / "hcfg.yaml").write_text("i: 0\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
    }
    env["GIT_COMMITTER_EMAIL"] = "b@b"
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    env["PYTHONWARNINGS"] = "ignore"
    rows: dict[str, list[float]] = {"replicator": [], "hydra": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            root = Path(tmp) / f"p{r}"
            _project(root)
            sweep = [PY, "-m", "replicator", "sweep", "-c", "cfg.yaml", "--yes"]
            sweep += ["--set", f"i=range(0,{args.jobs})", "-j", str(PARALLEL), "--", PY, "job.py"]
            hydra = [PY, "app.py", "-m", f"i=range(0,{args.jobs})", "hydra/launcher=joblib"]
            hydra += [f"hydra.launcher.n_jobs={PARALLEL}", f"hydra.sweep.dir={root / 'multirun'}"]
            hydra += ["hydra.job.chdir=True"]  # each job writes in its own output folder
            sides = [("replicator", sweep), ("hydra", hydra)]
            for name, command in sides if r % 2 == 0 else sides[::-1]:
                rows[name].append(_timed(command, root, env))
            bare = [_timed([PY, "bare.py", str(i)], root, env) for i in range(10)]
            rows["bare"].append(statistics.median(bare))
            runs = len(list((root / ".replicator" / "runs").iterdir()))
            outputs = len(list((root / "multirun").glob("*/metrics.jsonl")))
            assert runs == outputs == args.jobs, (runs, outputs)
    bare_s = statistics.median(rows["bare"])
    result = {
        "jobs": args.jobs,
        "parallel": PARALLEL,
        "repeat": args.repeat,
        "load_average": os.getloadavg()[0],
        "bare_job_s": round(bare_s, 4),
    }
    for name in ("replicator", "hydra"):
        wall = statistics.median(rows[name])
        result[f"{name}_wall_s"] = round(wall, 2)
        result[f"{name}_overhead_per_job_s"] = round(wall * PARALLEL / args.jobs - bare_s, 3)
        result[f"{name}_walls"] = [round(w, 2) for w in rows[name]]
    result["ratio_wall"] = round(result["replicator_wall_s"] / result["hydra_wall_s"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
