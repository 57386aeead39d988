"""``replicator ci init``: a GitHub Actions workflow that reproduces a short run on every push.

The workflow checks out the repository with its ``refs/replicator/*`` snapshots and the run
record (the store, or a directory given with ``--store``), installs the project and replicator,
and runs ``replicator reproduce RUN --env fresh``; the job fails when the run does not reproduce.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._protocol import REPLICATOR_STORE
from .._util.io import atomic_write
from ..errors import UsageError

__all__ = ["WORKFLOW_PATH", "ci_workflow", "write_ci_workflow"]

WORKFLOW_PATH = Path(".github/workflows/replicator-reproduce.yml")
"""Where ``replicator reproduce --ci`` writes the GitHub Actions workflow, relative to the repository."""


def replicator_requirement() -> str:
    """How CI can install the replicator that is running now (it is not on PyPI under its name)."""
    import sys

    from ..capture.environment import scan_packages
    from ..capture.git import git, git_root

    info = scan_packages(list(sys.path)).get("replicator") or {}
    version = info.get("version", "")
    origin = info.get("origin")
    if origin == "vcs" and info.get("url") and info.get("commit"):
        return f'"replicator @ git+{info["url"]}@{info["commit"]}"'
    if origin in ("editable", "local") and info.get("path"):
        root = git_root(info["path"])
        commit = (info.get("git") or {}).get("commit")
        remote = git(root, "remote", "get-url", "origin", check=False).text if root else ""
        if (
            remote
            and commit
            and "://" in remote
            and "@" not in remote.split("://", 1)[1].split("/")[0]
        ):
            return f'"replicator @ git+{remote}@{commit}"  # this commit must be pushed'
        return (
            f"replicator=={version}  # installed from {info['path']} here: "
            "point this at a source CI can reach (a git URL or a wheel)"
        )
    return f"replicator=={version}" if version else "replicator"


def ci_workflow(
    run: str,
    *,
    python: str = "3.11",
    store: str = ".replicator",
    rtol: float = 0.0,
    atol: float = 0.0,
    install: str = "pip install -e .",
    replicator: str | None = None,
) -> str:
    """The workflow text (YAML) reproducing ``run`` on every push and pull request."""
    if not run.strip():
        raise UsageError("Name the run to reproduce: replicator ci init RUN.")
    tolerance = f" --rtol {rtol:g} --atol {atol:g}" if rtol or atol else ""
    replicator = replicator or replicator_requirement()
    return f"""# Written by `replicator ci init`: reproduce run {run} on every push ("test in a
# different environment"). The run record must be committed or restored at {store}/ (the store
# ignores itself in git: `git add -f {store}/runs/{run}`), and its snapshot ref pushed
# (`git push origin 'refs/replicator/*'`).
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
      {REPLICATOR_STORE.name}: {store}
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
          python -m pip install {replicator}
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
