"""Helpers for the release tests: run the real CLI entry point and get (exit code, output)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from replicator.cli.main import main


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Call ``replicator.cli.main.main(args)`` as the console script does: (code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
