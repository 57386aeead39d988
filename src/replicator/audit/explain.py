"""Why a recorded run may not have come back: the causes ``replicator reproduce`` lists under a
verdict other than reproduced, most likely first.

Four sources, merged in this order:

1. config and code differences between the runs (``config: ...``, ``code: ...``): the
   reproduction did not run the same thing;
2. what the original run recorded about itself: PYTHONHASHSEED random (a script started with
   plain python), a seed that never reached the script, a process that ran on another host;
3. environment differences of rank 1-3 (packages, Python, numeric libraries), then the static
   findings of the run's code (file:line, see :mod:`.static`), then the other differences;
4. the command that finds out: ``replicator audit RUN``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..store import read_part
from .static import scan_paths

__all__ = ["likely_causes", "recorded_causes"]

_MAX_FINDINGS = 5
_RANK = re.compile(r"^environment \[(\d+)\]")


def recorded_causes(meta: Mapping[str, Any]) -> list[str]:
    """What the original run's ``run.json`` says that makes it hard to repeat."""
    causes = []
    hash_seed = str(meta.get("python_hash_seed") or "")
    if hash_seed.startswith("random"):
        causes.append(
            "PYTHONHASHSEED was random in the original run (started with plain python): the "
            "order of sets and dicts of strings changed from run to run; record it with "
            "replicator run, which fixes PYTHONHASHSEED to the seed"
        )
    if meta.get("seed_warning"):
        causes.append(
            f"the original run's seed may not have reached the script: {meta['seed_warning']}"
        )
    return causes


def _finding_causes(code_root: str | os.PathLike[str] | None) -> list[str]:
    if code_root is None or not Path(code_root).is_dir():
        return []
    findings = scan_paths([code_root], root=code_root)
    lines = [f"code {f.where}: {f.message} (fix: {f.fix})" for f in findings[:_MAX_FINDINGS]]
    if len(findings) > _MAX_FINDINGS:
        lines.append(
            f"code: {len(findings) - _MAX_FINDINGS} more findings (replicator audit shows all)"
        )
    return lines


def likely_causes(
    run_dir: str | os.PathLike[str],
    differences: Sequence[str] = (),
    *,
    code_root: str | os.PathLike[str] | None = None,
    run_ref: str | None = None,
) -> list[str]:
    """``differences`` (the ranked config, code and environment differences ``reproduce``
    computed) merged with what the original run recorded and the static findings of its code
    (``code_root``: the checked-out snapshot), most likely first, and the audit to run."""
    meta = read_part(run_dir, "run.json")
    first = [d for d in differences if d.startswith(("config", "code"))]
    envs = [d for d in differences if d not in first]
    top = [d for d in envs if (m := _RANK.match(d)) and int(m.group(1)) <= 3]
    rest = [d for d in envs if d not in top]
    ref = run_ref or str(meta.get("id") or Path(run_dir).name)
    audit = (
        f"to find which factor changes the result (PYTHONHASHSEED, threads, cores, clock, "
        f"entropy, ordering, deterministic kernels), run: replicator audit {ref}"
    )
    causes = [*first, *recorded_causes(meta), *top, *_finding_causes(code_root), *rest, audit]
    return list(dict.fromkeys(causes))
