"""``chatapp serve`` (the chat UI in a browser tab, through textual-serve) and
``chatapp install-desktop`` (a menu entry that opens chatapp in a terminal).

``serve`` listens on loopback unless told otherwise and prints a link with a fresh access
token; only a browser that opened that link gets a chat (see ``chatapp.ui.browser``)."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from chatapp.errors import UsageError

DESKTOP_FILE = "chatapp.desktop"
ICON_NAMES = ("chatapp.svg", "chatapp.png")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("install-desktop")(install_desktop)


def check_port_free(host: str, port: int) -> None:
    """UsageError naming the address when something already listens there."""
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port}: must be between 1 and 65535")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except socket.gaierror:
            raise UsageError(f"host {host!r}: not an address this machine has") from None
        except OSError as exc:
            raise UsageError(
                f"address {host}:{port}: cannot listen there ({exc.strerror})"
            ) from None


def chat_command() -> str:
    """The shell command textual-serve runs for each browser tab: this same chatapp."""
    return f"{shlex.quote(sys.executable)} -m chatapp"


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option(help="URL the browser uses, when it differs from http://HOST:PORT."),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option(
            "--max-sessions",
            help="Browser tabs that may chat at once (each runs its own chatapp and model).",
        ),
    ] = 2,
) -> None:
    """Serve the chat UI in your browser (each tab runs its own chatapp)."""
    if max_sessions < 1:
        raise UsageError(f"--max-sessions {max_sessions}: must be at least 1")
    from chatapp.ui.browser import is_loopback

    check_port_free(host, port)
    if public_url is not None:
        check_public_url(public_url)
    if not is_loopback(host):
        print(
            f"warning: serving on {host}: anyone who can reach this address and has the link "
            "printed below can read and write your conversations, and the link travels "
            "unencrypted over plain http; use the default 127.0.0.1 unless you trust the network",
            file=sys.stderr,
        )
    from chatapp.ui.browser import serve_in_browser

    serve_in_browser(
        chat_command(), host=host, port=port, public_url=public_url, max_sessions=max_sessions
    )


def check_public_url(url: str) -> None:
    """UsageError unless ``url`` is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--public-url {url!r}: use http(s)://HOST[:PORT]")


# -- desktop launcher -------------------------------------------------------------------------


def assets_dir() -> Path:
    """Where the icon and launcher are: inside the wheel, or the repository's assets/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_assets", package.parent / "assets"):
        if (candidate / DESKTOP_FILE).exists():
            return candidate
    raise UsageError(f"desktop files: not found next to {package} (reinstall chatapp)")


def xdg_data_home() -> Path:
    value = os.environ.get("XDG_DATA_HOME")
    return Path(value).expanduser() if value else Path.home() / ".local" / "share"


_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def desktop_quote(argument: str) -> str:
    """Quote one Exec argument the way the Desktop Entry spec wants (double quotes)."""
    if not any(c in _RESERVED for c in argument):
        return argument
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in argument)
    return '"' + escaped.replace("\\", "\\\\") + '"'


def launcher_text(template: str, executable: str) -> str:
    """The .desktop entry with Exec/TryExec pointing at this chatapp."""
    lines = []
    for line in template.splitlines():
        if line.startswith("Exec="):
            line = f"Exec={desktop_quote(executable)}"
        elif line.startswith("TryExec="):
            line = f"TryExec={executable}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def this_chatapp() -> str:
    """The chatapp executable of this installation (its venv may not be on PATH)."""
    beside = Path(sys.executable).with_name("chatapp")
    if beside.exists():
        return str(beside)
    found = shutil.which("chatapp")
    if found:
        return found
    raise UsageError("chatapp executable: not found next to this Python or on PATH")


def install_desktop() -> None:
    """Add chatapp to your desktop's application menu (opens in a terminal)."""
    source = assets_dir()
    data = xdg_data_home()
    apps = data / "applications"
    scalable = data / "icons" / "hicolor" / "scalable" / "apps"
    raster = data / "icons" / "hicolor" / "256x256" / "apps"
    try:
        for folder in (apps, scalable, raster):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "chatapp.svg", scalable / "chatapp.svg")
        shutil.copyfile(source / "chatapp.png", raster / "chatapp.png")
        template = (source / DESKTOP_FILE).read_text(encoding="utf-8")
        target = apps / DESKTOP_FILE
        target.write_text(launcher_text(template, this_chatapp()), encoding="utf-8")
        target.chmod(0o755)
    except OSError as exc:
        raise UsageError(f"desktop entry: cannot write under {data} ({exc.strerror})") from None
    print(f"installed {target}")
    print(f"installed {scalable / 'chatapp.svg'} and {raster / 'chatapp.png'}")
    if shutil.which("update-desktop-database"):
        import subprocess

        # Refreshes the menu's cache where the desktop keeps one; harmless where it does not.
        subprocess.run(
            ["update-desktop-database", "-q", str(apps)], check=False, capture_output=True
        )
