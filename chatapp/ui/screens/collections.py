"""Answering from documents in the chat UI: a collection picker (Ctrl+F, or "Answer from documents"
in the command palette), an on/off toggle (Alt+D) and the sources panel under grounded replies.

The choice is the chat screen's state (``TurnChoices``): while documents are on, every turn's
request names the collection, and the session retrieves the most relevant chunks and sends them
as numbered, fenced sources; the stored user message keeps the plain question and the reply keeps
its sources. When no chunk is relevant enough the model is not asked: the reply, stored like any
other, says the documents don't contain the answer.

Styles live in DEFAULT_CSS: this screen is a plug-in loaded through ``UIExtensions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from chatapp.config import Settings
    from chatapp.ui.extensions import UIExtensions

PICKER_KEY = "ctrl+f"
TOGGLE_KEY = "alt+d"
PICKER_TITLE = "Answer from documents"
TOGGLE_TITLE = "Documents on/off"
OFF = "__off__"


def register(ui: UIExtensions) -> None:
    from chatapp.ui.widgets.sources import sources_panel

    ui.add_screen("collections", lambda app: CollectionPickerScreen(app.settings, app.chat_screen))
    ui.add_command(
        PICKER_TITLE,
        "Pick a document collection (built with `chatapp index`) to answer from, with sources",
        "app.open_screen('collections')",
        key=PICKER_KEY,
        group="Documents",
    )
    ui.add_command(
        TOGGLE_TITLE,
        "Turn answering from the chosen document collection on or off",
        toggle_documents,
        key=TOGGLE_KEY,
        group="Documents",
    )
    ui.set_sources_renderer(sources_panel)


def choose_collection(screen: Any, name: str | None) -> None:
    """Use ``name`` for the following turns of the chat screen (None: without documents)."""
    screen.set_documents(name, name is not None)
    _tell(screen)


def toggle_documents(app: Any) -> None:
    screen = app.chat_screen
    if screen.choices.collection is None:
        app.action_open_screen("collections")
        return
    screen.set_documents(screen.choices.collection, not screen.choices.documents)
    _tell(screen)


def _tell(screen: Any) -> None:
    choices = screen.choices
    if choices.documents:
        screen.notify(
            f"Answering from collection '{choices.collection}' ({TOGGLE_KEY} turns it off)."
        )
    else:
        screen.notify("Answering without documents.")


class CollectionPickerScreen(ModalScreen[str | None]):
    """Pick the collection to answer from, or turn documents off."""

    DEFAULT_CSS = """
    CollectionPickerScreen { align: center middle; }
    CollectionPickerScreen > Vertical {
        width: 80; height: auto; max-height: 80%;
        border: round $accent; background: $surface; padding: 1 2;
    }
    CollectionPickerScreen OptionList { height: auto; max-height: 20; margin-top: 1; }
    CollectionPickerScreen .hint { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]  # noqa: RUF012

    def __init__(self, settings: Settings | None, chat_screen: Any) -> None:
        super().__init__()
        self.settings = settings
        self.chat_screen = chat_screen

    def compose(self) -> ComposeResult:
        # Options are built here, not in on_mount: nested children mount after the screen does.
        with Vertical():
            yield Label("Answer from documents", classes="title")
            yield OptionList(*self._options(), id="collection-list")
            yield Label(
                "Build collections with `chatapp index PATH --collection NAME`.", classes="hint"
            )

    def _options(self) -> list[Option]:
        from chatapp.retrieval.store.collection import list_collections, resolve_url

        options = [Option("Off — answer without documents", id=OFF)]
        current = self.chat_screen.choices.collection
        try:
            infos = list_collections(resolve_url(self.settings)) if self.settings else []
        except Exception as exc:  # a broken manifest must not trap the user in the dialog
            self.app.notify(f"collections: {exc}", severity="error")
            infos = []
        for info in infos:
            mark = "● " if info.name == current else "  "
            label = (
                f"{mark}{info.name} · {info.files} files · {info.chunks} chunks · {info.embedder}"
            )
            options.append(Option(label, id=info.name))
        if not infos:
            options.append(Option("(no collections yet)", id="__none__", disabled=True))
        return options

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: self.query_one("#collection-list", OptionList).focus())

    @on(OptionList.OptionSelected, "#collection-list")
    def picked(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id
        if choice in (None, "__none__"):
            return
        choose_collection(self.chat_screen, None if choice == OFF else choice)
        self.dismiss(choice)
