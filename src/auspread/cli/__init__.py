"""The ``auspread`` command line (Typer). Each command group lives in its own module with a ``register(app)``."""

from __future__ import annotations

import importlib
import sys

import typer

from auspread import __version__
from auspread.errors import AuspreadError

app = typer.Typer(
    name="auspread",
    help="Facial action unit detection in video from extremely sparse labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auspread {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """auspread: train, evaluate and run AU detectors (Knowledge-Spreader, MDHR, PIAP-DF, SSL baselines)."""


# command modules, each with register(app); one line per module
_COMMANDS = ["synth", "data", "prepare", "train", "pretrain", "study", "predict", "export", "label", "doctor"]


def register_commands(names: list[str]) -> None:
    """Add each command module's commands to ``app``. A missing or broken module fails loudly."""
    for name in names:
        importlib.import_module(f"auspread.cli.{name}").register(app)


register_commands(_COMMANDS)


def main() -> None:
    """Entry point: user errors become one clear line on stderr and a non-zero exit, not a traceback."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:  # a command's typer.Exit(code) is returned, not raised, in this mode
            sys.exit(rc)
    except AuspreadError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors etc.
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
