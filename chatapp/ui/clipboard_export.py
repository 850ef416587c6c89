"""Copying text out of the chat and exporting a conversation to a file.

Copies go through the terminal (OSC 52, which works over SSH and in the browser) and, where one
exists, the system clipboard. An export in a terminal is written as ``chatapp history export -o``
writes one: atomically and readable by its owner only (0600, it is a private conversation), by
default into the folder chatapp was started in (where ``-o FILE`` puts a relative FILE); in the
browser it is handed to Textual's ``deliver_text`` and downloads.
"""

from __future__ import annotations

import threading
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

    from chatapp.storage import ConversationStore


def copy_text(app: App[object], text: str, what: str = "text") -> None:
    """Copy ``text`` (OSC 52 and the system clipboard) and say so."""
    app.copy_to_clipboard(text)
    threading.Thread(target=_copy_with_pyperclip, args=(text,), daemon=True).start()
    app.notify(f"Copied {what} ({len(text):,} characters).")


def _copy_with_pyperclip(text: str) -> None:
    try:
        import pyperclip

        pyperclip.copy(text)
    except Exception:  # no clipboard program (headless, SSH): OSC 52 already did its best
        pass


def export_directory() -> Path:
    """The folder the export dialog proposes: the one chatapp was started in (the home folder
    when that is gone)."""
    try:
        return Path.cwd()
    except OSError:
        return Path.home()


def export_conversation(
    app: App[object], store: ConversationStore, conversation_id: int, fmt: str, folder: Path
) -> Path | None:
    """Write the conversation as Markdown or JSON into ``folder`` (0600) and say where; in the
    browser, download it instead (the app reports that through its DeliveryComplete /
    DeliveryFailed handlers). Returns the file written (None: downloaded or failed)."""
    from chatapp.paths import write_private_text
    from chatapp.storage.export import export_json, export_markdown
    from chatapp.terminal_text import safe_for_terminal

    text = (export_json if fmt == "json" else export_markdown)(store, conversation_id)
    name = f"chatapp-conversation-{conversation_id}.{fmt}"
    if app.is_web:
        app.deliver_text(StringIO(text), save_filename=name, encoding="utf-8")
        return None
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory")
        write_private_text(target, text)
    except OSError as exc:
        shown = safe_for_terminal(str(target))
        app.notify(f"{shown}: cannot be written ({exc.strerror or exc})", severity="error")
        return None
    app.notify(f"Exported to {safe_for_terminal(str(target))} (readable only by you).")
    return target
