"""Copying text out of the chat and exporting a conversation to a file.

Copies go through the terminal (OSC 52, which works over SSH and in the browser) and, where one
exists, the system clipboard. Exports are written through Textual's ``deliver_text``: into a
folder in a terminal, as a download in the browser.
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
    import platformdirs

    return Path(platformdirs.user_downloads_dir())


def export_conversation(
    app: App[object], store: ConversationStore, conversation_id: int, fmt: str, folder: Path
) -> None:
    """Write the conversation as Markdown or JSON into ``folder`` (the app reports the outcome
    through its DeliveryComplete / DeliveryFailed handlers)."""
    from chatapp.storage.export import export_json, export_markdown

    text = (export_json if fmt == "json" else export_markdown)(store, conversation_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        app.notify(f"folder {folder}: cannot be created ({exc})", severity="error")
        return
    app.deliver_text(
        StringIO(text),
        save_directory=folder,
        save_filename=f"chatapp-conversation-{conversation_id}.{fmt}",
        encoding="utf-8",
    )
