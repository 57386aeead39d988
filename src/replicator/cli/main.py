"""Entry point of the ``replicator`` command: a click group whose commands load lazily.

Each command lives in its own module under ``replicator.cli`` and is imported only when it is
invoked (or listed in ``--help``), so ``replicator --version`` stays fast. Library errors
(:class:`~replicator.errors.ReplicatorError`) become one-line messages with their exit code:
0 ok, 1 the thing checked failed, 2 usage error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

import click

from .._version import __version__
from ..errors import MissingDependencyError, ReplicatorError, StoreError

# command name -> "module:attribute" under replicator.cli
COMMANDS: dict[str, str] = {
    "run": "run:run_command",
    "ls": "runs:ls_command",
    "show": "runs:show_command",
    "diff": "runs:diff_command",
    "index": "runs:index_group",
    "data": "data:data_group",
    "report": "report:report_command",
    "notebook": "notebook:notebook_group",
    "release": "release:release_group",
    "readme": "release:readme_group",
    "card": "cards:card_group",
    "checklist": "cards:checklist_command",
    "checkpoint": "checkpoint:checkpoint_group",
    "env": "env:env_group",
    "reproduce": "reproduce:reproduce_command",
    "audit": "audit:audit_command",
    "ci": "reproduce:ci_group",
    "import": "imports:import_group",
    "mirror": "mirror:mirror_command",
    "sweep": "sweep:sweep_group",
    "push": "remote:push_command",
    "pull": "remote:pull_command",
    "ui": "ui:ui_command",
}


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(f"replicator.cli.{module}") is not None


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module_name, attr = COMMANDS[cmd_name].split(":")
        module = importlib.import_module(f"replicator.cli.{module_name}")
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="replicator")
def cli() -> None:
    """Record, compare and re-run machine-learning experiments.

    \b
    Example:
      replicator run -c configs/mlp.yaml --seeds 3 -- python train.py
      replicator ls
      replicator show <run-id>

    Exit codes: 0 ok, 1 the thing checked failed, 2 usage error.
    """


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings (a damaged run, a torn metrics line) as one ``warning:`` line, like the CLI's
    own, instead of Python's file:line form pointing into replicator."""
    click.secho(f"warning: {message}", err=True, fg="yellow")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI, turning replicator's errors into messages and exit codes."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting.
        result = cli.main(args=argv, prog_name="replicator", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ReplicatorError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        from .._util.deps import OPTIONAL

        top = (exc.name or "").split(".")[0]
        if top not in OPTIONAL:
            raise
        missing = MissingDependencyError(top, OPTIONAL[top], purpose="this command")
        click.echo(f"Error: {missing}", err=True)
        sys.exit(missing.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # `replicator ls | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        # imported here: _protocol pulls in json, secrets and pathlib, which --version does not need
        from .._protocol import REPLICATOR_DEBUG

        if REPLICATOR_DEBUG.get():
            raise
        if isinstance(exc, OSError) and StoreError.is_environmental(exc):
            # disk full, read-only, permission denied: the machine's fault, named with the fix
            error = StoreError.from_os_error(exc, action="access")
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)
        click.echo(
            f"Error: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in replicator. Run again with REPLICATOR_DEBUG=1 for the traceback "
            "and report it.",
            err=True,
        )
        sys.exit(1)
