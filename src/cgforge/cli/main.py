"""Entry point of the ``cgforge`` command."""

from __future__ import annotations

import sys
import warnings

import typer
from rich.markup import escape

from cgforge import __version__
from cgforge.cli import aa as aa_commands
from cgforge.cli import cg as cg_commands
from cgforge.cli import compare as compare_commands
from cgforge.cli import db as db_commands
from cgforge.cli import export as export_commands
from cgforge.cli import fm as fm_commands
from cgforge.cli import references as references_commands
from cgforge.cli import run as run_commands
from cgforge.cli import tradeoff as tradeoff_commands
from cgforge.cli import train as train_commands
from cgforge.cli.options import with_flags
from cgforge.cli.progress import console
from cgforge.errors import CGForgeError

app = typer.Typer(
    name="cgforge",
    help="Coarse-grained models of molecular liquids that keep all-atom structure and mobility.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
aa_commands.register(app)
cg_commands.register(app)
compare_commands.register(app)
db_commands.register(app)
export_commands.register(app)
fm_commands.register(app)
references_commands.register(app)
run_commands.register(app)
tradeoff_commands.register(app)
train_commands.register(app)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"cgforge {__version__}")
        raise typer.Exit()


def _usage_errors() -> tuple[type[Exception], ...]:
    """The parser's usage-error classes: typer's own where typer vendors click (click need not
    be installed then), else click's (an older typer depends on click)."""
    if hasattr(typer, "TyperException"):
        return (typer.TyperException,)
    import click  # an older typer: click is its dependency

    return (click.ClickException,)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user-caused errors print one line, with the command's flags in place of the
    library parameters the error names, and exit with status 2."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=args, standalone_mode=False)
    except CGForgeError as exc:
        command = next((arg for arg in args if not arg.startswith("-")), None)
        message = " ".join(with_flags(exc, command).split())  # one line, whatever it holds
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: rerun the same command to resume from the last checkpoint")
        return 130
    except OSError as exc:  # the file system refused: a path the user gave, full disk, rights
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or str(exc)
        console.print(
            f"[bold red]error:[/] {escape(reason)}{escape(where)}; check the paths given and "
            "that they are writable",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # usage errors of the command line parser
        if isinstance(exc, _usage_errors()) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        raise
    if result == 130:  # typer's answer to Ctrl-C when it handles the interrupt itself
        console.print("interrupted: rerun the same command to resume from the last checkpoint")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
