"""Every command has --help with an example; the README documents every command (like
sqlite-utils' test_docs: an undocumented command fails here)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from replicator import __version__
from replicator.cli.main import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def all_commands() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        out.append((name,))
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command)
            out.extend((name, sub) for sub in command.list_commands(sub_ctx))
    return out


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # an example in the command's own help or in its group's
    group_help = CliRunner().invoke(cli, [path[0], "--help"]).output
    assert "Example" in result.output or "Example" in group_help


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p))
def test_every_command_is_documented_in_the_readme_or_docs(path: tuple[str, ...]) -> None:
    docs = README.read_text() + "".join(
        p.read_text() for p in (README.parent / "docs").glob("*.md")
    )
    assert f"replicator {' '.join(path)}" in docs


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_is_a_usage_error() -> None:
    from ..conftest import run_cli

    proc = run_cli("nosuchcommand")
    assert proc.returncode == 2 and "No such command" in proc.stderr


def test_public_api_is_complete_and_lazy() -> None:
    import subprocess
    import sys

    import replicator

    assert replicator.__all__ == sorted([*replicator._EXPORTS, "__version__"])
    for name in replicator.__all__:
        assert getattr(replicator, name) is not None
    code = "import sys, replicator; print(sorted(m for m in ('numpy', 'omegaconf', 'yaml', 'click', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # `import replicator` loads nothing heavy


def test_ctx_exit_code_reaches_the_shell() -> None:
    """`python -m replicator` and the console script pass a command's exit code through."""
    from replicator.cli.main import main

    assert main(["--version"]) == 0
    from ..conftest import run_cli

    assert run_cli("ls", "--where", "(").returncode == 2


def test_missing_optional_package_names_the_extra(tmp_path) -> None:
    """Without pandas (the `stats` extra), report and load_runs say what to install."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from replicator.cli.main import main\n"
        "sys.exit(main(['report', 'digits', '--metric', 'acc']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'replicator[stats]'" in proc.stderr and "Traceback" not in proc.stderr
    api = "import sys; sys.modules['pandas'] = None\nimport replicator\nreplicator.load_runs()\n"
    proc = subprocess.run([sys.executable, "-c", api], cwd=tmp_path, capture_output=True, text=True)
    assert "MissingDependencyError" in proc.stderr and "replicator[stats]" in proc.stderr
