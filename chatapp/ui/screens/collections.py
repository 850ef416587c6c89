"""Answering from documents in the chat UI: a collection picker (Ctrl+F, or "Answer from documents"
in the command palette), an on/off toggle (Alt+D), the turn preparer that grounds each turn in the
chosen collection, and the sources panel under grounded replies.

While documents are on, every turn is sent with the collection's most relevant chunks as
numbered, fenced sources (chatapp.retrieval.grounding); the stored user message keeps the plain
question and the reply keeps its sources. When no chunk is relevant enough the turn is not sent
to the model: the notice says the documents don't contain the answer.

Styles live in DEFAULT_CSS: this screen is a plug-in loaded through ``UIExtensions``.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from chatapp.errors import RetrievalError

if TYPE_CHECKING:
    from chatapp.session import TurnOptions
    from chatapp.ui.extensions import UIExtensions

PICKER_KEY = "ctrl+f"
TOGGLE_KEY = "alt+d"
PICKER_TITLE = "Answer from documents"
TOGGLE_TITLE = "Documents on/off"
OFF = "__off__"


@dataclass
class DocumentsState:
    """Per app: the chosen collection, whether turns are grounded in it, loaded searchers."""

    collection: str | None = None
    enabled: bool = False
    searchers: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_states: weakref.WeakKeyDictionary[Any, DocumentsState] = weakref.WeakKeyDictionary()


def state_of(app: Any) -> DocumentsState:
    if app not in _states:
        _states[app] = DocumentsState()
    return _states[app]


def register(ui: UIExtensions) -> None:
    from chatapp.ui.widgets.sources import sources_panel

    ui.add_screen("collections", lambda app: CollectionPickerScreen())
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
    ui.add_turn_preparer(ground_turn)
    ui.set_sources_renderer(sources_panel)


def choose_collection(app: Any, name: str | None) -> None:
    """Use ``name`` for the following turns (None: answer without documents)."""
    state = state_of(app)
    state.collection = name
    state.enabled = name is not None
    show_state(app)


def toggle_documents(app: Any) -> None:
    state = state_of(app)
    if state.collection is None:
        app.action_open_screen("collections")
        return
    state.enabled = not state.enabled
    show_state(app)


def show_state(app: Any) -> None:
    state = state_of(app)
    label = state.collection if state.enabled else None
    app.chat_screen.header.set_field("docs", label)
    if state.enabled:
        app.notify(f"Answering from collection '{state.collection}' ({TOGGLE_KEY} turns it off).")
    else:
        app.notify("Answering without documents.")


def ground_turn(app: Any, text: str, options: TurnOptions) -> TurnOptions:
    """Turn preparer (generation worker thread): add the collection's sources to the turn."""
    state = state_of(app)
    if not state.enabled or state.collection is None:
        return options
    from chatapp.retrieval.collection import open_collection, resolve_url
    from chatapp.retrieval.grounding import prepare_grounded_turn
    from chatapp.retrieval.search import Searcher

    settings, backend = app.settings, app.backend
    if backend is None:
        raise RetrievalError("no model loaded: cannot fit sources into its context")
    with state.lock:  # one searcher per collection, kept warm between turns
        searcher = state.searchers.get(state.collection)
        if searcher is None:
            coll = open_collection(state.collection, resolve_url(settings))
            searcher = Searcher(coll)
            state.searchers[state.collection] = searcher
        turn = prepare_grounded_turn(
            options.model_text or text,
            searcher.collection,
            settings,
            backend,
            searcher=searcher,
            system_prompt=options.system_prompt,
            history_tokens=backend.n_ctx // 4,
        )
    if not turn.grounded:
        raise RetrievalError(turn.refusal or "no relevant sources")
    options.model_text = turn.model_text
    options.sources = turn.sources
    return options


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

    def compose(self) -> ComposeResult:
        # Options are built here, not in on_mount: nested children mount after the screen does.
        with Vertical():
            yield Label("Answer from documents", classes="title")
            yield OptionList(*self._options(), id="collection-list")
            yield Label(
                "Build collections with `chatapp index PATH --collection NAME`.", classes="hint"
            )

    def _options(self) -> list[Option]:
        from chatapp.retrieval.collection import list_collections, resolve_url

        options = [Option("Off — answer without documents", id=OFF)]
        current = state_of(self.app).collection
        try:
            infos = list_collections(resolve_url(self.app.settings))  # type: ignore[attr-defined]
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
        choose_collection(self.app, None if choice == OFF else choice)
        self.dismiss(choice)
