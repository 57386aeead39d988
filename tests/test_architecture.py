"""The one-way dependency rule (docs/architecture.md) is an import-linter contract in
pyproject.toml: a back-import planted into a copy of the package must break it, deferred imports
inside functions included, and the real tree must keep it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import replicator

PACKAGE = Path(replicator.__file__).resolve().parent
ROOT = PACKAGE.parents[1]  # the checkout (src layout)
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.is_file() or not PYPROJECT.is_file(),
    reason="needs lint-imports (the test extra) and a source checkout",
)


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts, over the package found under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_package(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "replicator", ignore=shutil.ignore_patterns("__pycache__"))
    return src


FUTURE = "from __future__ import annotations\n"
# a back-import inside a function: import-linter sees these too
DEFERRED = "\n\ndef _planted() -> object:\n    import {0}\n\n    return {0}\n"


def plant(path: Path, text: str, *, after: str) -> None:
    source = path.read_text(encoding="utf-8")
    assert after in source, f"{path.name} no longer has {after!r}: pick another anchor"
    path.write_text(source.replace(after, after + text, 1), encoding="utf-8")


def test_an_unchanged_copy_keeps_the_contract(tmp_path: Path) -> None:
    """The baseline of the tests below: only what they plant breaks the copy."""
    proc = lint_imports(copy_package(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_deferred_back_import_inside_a_function_breaks_the_contract(tmp_path: Path) -> None:
    src = copy_package(tmp_path)
    store = src / "replicator" / "store" / "store.py"
    plant(
        store,
        "\n\ndef _planted() -> object:\n    from replicator.cli import main\n\n    return main\n",
        after=FUTURE,
    )
    proc = lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "replicator.store is not allowed to import replicator.cli" in proc.stdout
    assert "replicator.store.store -> replicator.cli" in proc.stdout


def test_a_module_level_back_import_in_the_foundations_breaks_the_contract(
    tmp_path: Path,
) -> None:
    src = copy_package(tmp_path)
    io = src / "replicator" / "_util" / "io.py"
    plant(io, "\nfrom replicator.record import run as _planted\n", after=FUTURE)
    proc = lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "replicator._util is not allowed to import replicator.record" in proc.stdout
    assert "replicator._util.io -> replicator.record.run" in proc.stdout


def test_an_import_between_independent_siblings_breaks_the_contract(tmp_path: Path) -> None:
    src = copy_package(tmp_path)
    plant(
        src / "replicator" / "cards" / "checklist.py",
        DEFERRED.format("replicator.report"),
        after=FUTURE,
    )
    proc = lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "replicator.cards is not allowed to import replicator.report" in proc.stdout
    assert "replicator.cards.checklist -> replicator.report" in proc.stdout


def test_a_cycle_inside_one_package_breaks_the_contract(tmp_path: Path) -> None:
    src = copy_package(tmp_path)
    store = src / "replicator" / "store"
    plant(store / "query.py", DEFERRED.format("replicator.store.frames"), after=FUTURE)
    plant(store / "frames.py", DEFERRED.format("replicator.store.query"), after=FUTURE)
    proc = lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No cycles are allowed in replicator.store" in proc.stdout


def test_importing_the_package_root_from_inside_breaks_the_contract(tmp_path: Path) -> None:
    """The root re-exports every layer lazily: `from replicator import Run` in store/ is a
    back-import that the layers alone would not see."""
    src = copy_package(tmp_path)
    plant(
        src / "replicator" / "store" / "query.py",
        "\n\ndef _planted() -> object:\n    from replicator import Run\n\n    return Run\n",
        after=FUTURE,
    )
    proc = lint_imports(src)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "replicator.store.query -> replicator (l." in proc.stdout


def test_the_real_tree_keeps_the_contract() -> None:
    """What `make lint` checks (there from the checkout's root, here from src/)."""
    proc = lint_imports(ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
