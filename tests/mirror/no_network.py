"""A guard for the offline sinks' end-to-end tests: every interpreter started with its
environment records each network connection or name lookup it attempts (an audit hook installed
by ``sitecustomize``), so that a test can assert that an offline mode never reached out."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["network_guard"]

SITECUSTOMIZE = """\
import os, sys

def _record(event, args):
    if event == "socket.getaddrinfo" or (
        event == "socket.connect" and isinstance(args[1], tuple)  # IP, not a unix socket
    ):
        with open(os.environ["NETWORK_GUARD_LOG"], "a") as log:
            log.write(f"{os.getpid()} {event} {args[1] if event == 'socket.connect' else args[0]}\\n")

sys.addaudithook(_record)
"""


def network_guard(root: Path) -> tuple[dict[str, str], Path]:
    """Environment variables that install the guard, and the log it writes."""
    folder = root / "network-guard"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = folder / "attempts.log"
    log.touch()
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "NETWORK_GUARD_LOG": str(log)}, log
