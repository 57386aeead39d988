"""``mirrors.json``: what each sink of a run received, kept in the run directory.

One entry per sink, written atomically whenever it changes::

    {"mlflow": {"name": "mlflow", "where": "http://127.0.0.1:5000/#/experiments/1/runs/3f..",
                "sent_points": 200, "offset": 9120, "errors": ["ConnectionError: ..."],
                "failures": 3, "status": "gap", "closed": false, "ref": "3f..",
                "options": {"tracking_uri": "http://127.0.0.1:5000"}, "updated": 1764...}}

``offset`` is the number of bytes of ``metrics.jsonl`` the sink has received (whole lines);
``replicator mirror RUN --to NAME`` goes on from there. ``status`` is ``sending`` while the run
is recorded, then ``ok`` (everything sent and the tool's run closed), ``gap`` (part of it
unsent: the rest can be sent later) or ``failed`` (nothing reached the tool). ``errors`` keeps
the first error's text (credentials redacted); ``ref`` is the tool's own id of the run, so that
filling a gap continues the same run there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._util.io import atomic_write_json, read_json
from ..redact import redact_text

__all__ = ["MIRRORS_FILE", "describe_mirrors", "read_mirrors", "write_mirrors"]

MIRRORS_FILE = "mirrors.json"
"""The sinks' state in a run directory."""


def read_mirrors(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The sinks' state of a run (empty when it was never mirrored or the file is unreadable)."""
    try:
        data = read_json(Path(run_dir) / MIRRORS_FILE)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def write_mirrors(run_dir: str | os.PathLike[str], state: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace ``mirrors.json`` atomically."""
    atomic_write_json(Path(run_dir) / MIRRORS_FILE, {k: dict(v) for k, v in state.items()})


def describe_mirrors(run_dir: str | os.PathLike[str], *, run_id: str | None = None) -> list[str]:
    """A few lines for ``replicator show``: sink, where, points sent, status and gap."""
    state = read_mirrors(run_dir)
    if not state:
        return []
    lines = []
    for name, entry in state.items():
        status = str(entry.get("status", "?"))
        where = str(entry.get("where") or "-")
        sent = entry.get("sent_points", 0)
        line = f"{name:<12} {status:<8} {sent} points -> {where}"
        if status in ("gap", "failed"):
            errors = entry.get("errors") or []
            cause = f" ({redact_text(str(errors[0]))[:160]})" if errors else ""
            fill = f"replicator mirror {run_id or Path(run_dir).name} --to {name}"
            line += f"\n{'':<12} unsent from byte {entry.get('offset', 0)}{cause}; fill: {fill}"
        lines.append(line)
    return lines
