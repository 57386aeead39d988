"""The capture of a run opened by ``replicator.start()``, in a child interpreter of its own.

Code, environment and hardware are captured by a child interpreter of its own: a script that
holds the GIL (a tight Python loop, logging flat out) would starve a capture thread for
seconds, one 5 ms switch interval per system call, and a run killed then is exactly the one
someone inspects. The child also finishes when the script is killed. It sees the script's
sys.path (the packages it records) and loads numpy when the script has (its BLAS pools).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..store import Store

__all__ = ["capture_result", "start_capture"]

_CAPTURE_SCRIPT = """
import json, sys
args = json.loads(sys.argv[1])
sys.path[:] = args["path"]
if args["numpy"]:
    try:
        import numpy
    except Exception:
        pass
from pathlib import Path
from replicator.record.recorder import capture_all
from replicator.store import Store
store = Store(args["store"], project_root=args["project_root"])
code = capture_all(Path(args["run_dir"]), run_id=args["run_id"], cwd=args["cwd"], store=store)
print(json.dumps(code))
"""


def start_capture(
    run_dir: Path, *, run_id: str, cwd: str, store: Store
) -> subprocess.Popen[bytes] | None:
    args = {
        "path": list(sys.path),
        "numpy": "numpy" in sys.modules,
        "store": os.fspath(store.root),
        "project_root": os.fspath(store.project_root),
        "run_dir": os.fspath(run_dir),
        "run_id": run_id,
        "cwd": cwd,
    }
    if not sys.executable or getattr(sys, "frozen", False):  # a frozen app is no interpreter
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _CAPTURE_SCRIPT, json.dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in the terminal is the script's, not the capture's
        )
    except OSError:
        return None


def capture_result(proc: subprocess.Popen[bytes] | None) -> dict[str, Any] | None:
    """The code summary the capture child printed, or None (then the caller captures here)."""
    if proc is None:
        return None
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode != 0:
        return None  # captured here instead, which says what fails
    if err:  # what the capture says (a file left out of the snapshot...) is the user's to read
        try:
            sys.stderr.write(err.decode("utf-8", "replace"))
        except Exception:
            pass
    try:
        code = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return code if isinstance(code, dict) else None
