"""``replicator ci init``: a GitHub Actions workflow that reproduces a short run on every push.

The workflow checks out the repository with its ``refs/replicator/*`` snapshots and the run
record (the store, or a directory given with ``--store``), installs the project and replicator,
and runs ``replicator reproduce RUN --env fresh``; the job fails when the run does not reproduce.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._io import atomic_write
from ..errors import UsageError

__all__ = ["WORKFLOW_PATH", "ci_workflow", "write_ci_workflow"]

WORKFLOW_PATH = Path(".github/workflows/replicator-reproduce.yml")


def ci_workflow(
    run: str,
    *,
    python: str = "3.11",
    store: str = ".replicator",
    rtol: float = 0.0,
    atol: float = 0.0,
    install: str = "pip install -e .",
) -> str:
    """The workflow text (YAML) reproducing ``run`` on every push and pull request."""
    if not run.strip():
        raise UsageError("Name the run to reproduce: replicator ci init RUN.")
    tolerance = f" --rtol {rtol:g} --atol {atol:g}" if rtol or atol else ""
    return f"""# Written by `replicator ci init`: reproduce run {run} on every push ("test in a
# different environment"). The run record must be committed or restored at {store}/.
name: replicator reproduce
on:
  push:
  pull_request:
  workflow_dispatch:
jobs:
  reproduce:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    env:
      REPLICATOR_STORE: {store}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - name: Fetch replicator snapshots
        run: git fetch origin '+refs/replicator/*:refs/replicator/*' || true
      - uses: actions/setup-python@v5
        with:
          python-version: "{python}"
      - name: Install
        run: |
          python -m pip install --upgrade pip uv
          {install}
          python -m pip install replicator
      - name: Reproduce {run}
        run: replicator reproduce {run} --env fresh{tolerance} --json > reproduce.json
      - name: Keep the verdict
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: replicator-verdict
          path: reproduce.json
"""


def write_ci_workflow(
    run: str,
    *,
    root: str | os.PathLike[str],
    force: bool = False,
    **options: object,
) -> Path:
    """Write the workflow under ``root``; refuses to overwrite an existing one unless ``force``."""
    import yaml

    target = Path(root) / WORKFLOW_PATH
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to overwrite it.")
    text = ci_workflow(run, **options)  # type: ignore[arg-type]
    yaml.safe_load(text)  # the template must stay valid YAML
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, text, fsync=False)
    return target
