"""The ``ftaudit`` Typer application and its command groups; usage errors as one line, like every user error."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

try:  # newer Typer carries its own copy of click; its usage errors are that copy's classes
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - Typer over the click package
    from click.exceptions import ClickException

from ..defaults import __version__
from ..progress import console


class OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing option) as one line, like every other user error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except ClickException as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `ftaudit` or `ftaudit datasets`: show the help
                print(exc.format_message())
                sys.exit(exc.exit_code)
            where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
            console.print(f"[red]error:[/] {escape(exc.format_message())}{escape(where)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            console.print("[red]aborted[/]")
            sys.exit(1)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


# Help is plain click formatting: it wraps at the terminal width instead of cutting descriptions with "...", and
# shows square brackets as typed (NAME[:SPLIT][@N]) where Rich markup would swallow them.
app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Fine-tuning risk assessment: how much fine-tuning undoes a chat model's safety training.\n\n"
                       "Example: ftaudit quickstart --out runs/quickstart")
datasets_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Named datasets and their splits.\n\nExample: ftaudit datasets list")
app.add_typer(datasets_app, name="datasets")
judges_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Judges: list, validate against human labels, compare.\n\nExample: ftaudit judges list")
app.add_typer(judges_app, name="judges")


def _version(value: bool):
    if value:
        print(f"ftaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                         help="Print the version and exit.")] = None,
         trust_remote_code: Annotated[bool, typer.Option(help="Allow models that ship their own Python code.")] = False):
    """ftaudit command line."""
    if trust_remote_code:
        os.environ["FTAUDIT_TRUST_REMOTE_CODE"] = "1"
