"""Notebooks as runs: ``run_notebook`` executes a parameterised notebook with papermill and
records it as a run (``replicator notebook run``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._protocol import ChildContext
from .._util.deps import require
from .._util.io import atomic_write_json, read_json
from ..errors import ReplicatorError, UsageError
from ..record.opening import start
from ..record.outputs import hash_file
from ..record.run import Run
from ..store import StoreLike

__all__ = ["NotebookRun", "parse_parameters", "run_notebook"]


@dataclass(frozen=True)
class NotebookRun:
    """A notebook executed as a run: its id and directory, the executed copy, the final status."""

    run_id: str
    run_dir: Path
    executed: Path
    output: Path | None
    status: str
    parameters: Mapping[str, Any]


def parse_parameters(pairs: Iterable[str]) -> dict[str, Any]:
    """``["lr=0.01", "model=mlp", "layers=[64, 64]"]`` -> typed values (parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"Parameter {pair!r} must be KEY=VALUE with KEY a Python name, e.g. -p lr=0.01."
            )
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def run_notebook(
    notebook: str | os.PathLike[str],
    *,
    parameters: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    kernel: str | None = None,
    store: StoreLike = None,
) -> NotebookRun:
    """Execute a parameterised notebook with papermill and record it as a run.

    The run (opened with :func:`replicator.start`) records the parameters as its config, the
    seed, the environment and the code snapshot like any run; the executed notebook is kept in the
    run directory as ``notebook.ipynb`` (and copied to ``output`` if given), with ``notebook.json``
    naming the source and its hash. The kernel inherits ``REPLICATOR_RUN_DIR``, so a notebook
    that calls ``replicator.start()`` joins this run (and is seeded with its seed) and its
    ``run.log`` / ``run.summary`` land here; ``PYTHONHASHSEED`` is set to the seed for the
    kernel. A declared ``seed`` parameter that was not given receives the run's seed. A failing
    cell marks the run failed and raises :class:`ReplicatorError` naming the cell.
    """
    pm = _papermill()
    source = Path(notebook)
    declared = _declared_parameters(pm, source)
    params = dict(parameters or {})
    inject = dict(params)
    stem = source.stem
    # The notebook's code runs in the kernel, a fresh interpreter: seed it there (below), not here.
    run = start(
        params,
        experiment=experiment or stem,
        name=name or stem,
        seed=seed,
        store=store,
        seed_frameworks=False,
    )
    if "seed" in declared and "seed" not in params:
        inject["seed"] = run.seed
    executed = run.dir / "notebook.ipynb"
    failure: BaseException | None = None
    with run:
        try:
            with _kernel_environ(run):
                pm.execute_notebook(
                    str(source),
                    str(executed),
                    parameters=inject,
                    kernel_name=kernel,
                    cwd=str(source.resolve().parent),
                    progress_bar=False,
                    log_output=False,
                )
        except pm.PapermillExecutionError as exc:
            failure = exc
        finally:
            _record_notebook(run, source, executed, inject, kernel)
        if failure is not None:
            run.finish("failed", error=str(failure).strip().splitlines()[0][:300])
    copied = None
    if output is not None and executed.is_file():
        copied = Path(output)
        shutil.copyfile(executed, copied)
    if failure is not None:
        raise _failed(failure, source, run, executed) from failure
    return NotebookRun(run.id, run.dir, executed, copied, "completed", inject)


def _papermill() -> Any:
    pm = require("papermill", purpose="Running notebooks")
    return pm


def _declared_parameters(pm: Any, source: Path) -> Mapping[str, Any]:
    if not source.is_file():
        raise UsageError(f"Notebook {source} does not exist.")
    try:
        return dict(pm.inspect_notebook(str(source)))
    except Exception as exc:  # a notebook that cannot be parsed is the user's input
        raise UsageError(f"{source} cannot be read as a notebook ({exc}).") from exc


@contextmanager
def _kernel_environ(run: Run) -> Iterator[None]:
    """The kernel joins the run: the protocol's run directory and seed, restored afterwards."""
    # what `replicator run` gives its child, PYTHONHASHSEED included (the kernel's interpreter
    # starts after this)
    kernel_env = ChildContext(run_dir=run.dir, run_id=run.id, seed=run.seed).to_environ()
    saved = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _record_notebook(
    run: Run, source: Path, executed: Path, inject: Mapping[str, Any], kernel: str | None
) -> None:
    # what the kernel recorded (run.summary inside the notebook) is kept, not overwritten
    try:
        kept = read_json(run.dir / "summary.json")
        if isinstance(kept, dict):
            run.summary.update(kept)
    except (OSError, ValueError):
        pass
    atomic_write_json(
        run.dir / "notebook.json",
        {
            "source": str(source.resolve()),
            "source_blake3": hash_file(source),
            "executed": executed.name,
            "parameters": dict(inject),
            "kernel": kernel or "(notebook's own)",
        },
    )


def _failed(failure: BaseException, source: Path, run: Run, executed: Path) -> ReplicatorError:
    cell = getattr(failure, "exec_count", None)
    return ReplicatorError(
        f"Notebook {source} failed in cell {cell}: {getattr(failure, 'ename', '')}: "
        f"{getattr(failure, 'evalue', '')}. Run {run.id} is marked failed; the executed "
        f"notebook with the error is {executed}."
    )
