"""The chatapp Textual application: startup, the model, settings, theme, clipboard, export.

Startup paints the first frame before anything heavy is imported: settings (pydantic), the
conversation store and the extension modules load in a thread worker after the first frame, and
the model (llama.cpp) loads in another, reporting progress in the status line. Until it is ready
the history can be browsed and a prompt can be typed; a prompt sent early waits for the model.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.events import DeliveryComplete, DeliveryFailed

from chatapp.errors import ChatappError
from chatapp.ui.commands import ChatCommands, register_builtin_commands
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.messages import ModelLoaded, ModelLoadProgress
from chatapp.ui.screens.chat import ChatScreen

if TYPE_CHECKING:
    from textual.widget import Widget

    from chatapp.config import Settings
    from chatapp.domain import CancelToken
    from chatapp.engine.base import Backend
    from chatapp.session import TurnEvent, TurnOptions
    from chatapp.storage import ConversationStore, Message

log = logging.getLogger(__name__)

BackendFactory = Callable[[], "Backend"]
FIRST_FRAME_GRACE_S = 0.05
STOP_WAIT_S = 20.0
"""How long quitting waits for a stopped reply to be stored (prompt evaluation cannot be
interrupted mid-batch)."""


def peek_theme() -> str | None:
    """The theme from CHATAPP_UI__THEME or config.toml, read without pydantic so the first
    frame already has the user's colours."""
    if value := os.environ.get("CHATAPP_UI__THEME"):
        return value
    try:
        import tomllib

        from chatapp import paths

        data = tomllib.loads(paths.config_file().read_text(encoding="utf-8"))
        theme = data.get("ui", {}).get("theme")
        return theme if isinstance(theme, str) else None
    except (OSError, ValueError):
        return None


def ui_model_settings(settings: Settings) -> Settings:
    """Settings for the in-process model next to the interface: unless the user chose a thread
    count, leave one core to the UI. llama.cpp's threads wait for each other at every step, so
    one of them sharing a core with the UI thread slows every token (measured on 2 cores: 2
    threads beside the UI gave 1–33 tok/s depending on other load, 1 thread a steady 25–31)."""
    if settings.model.n_threads is not None:
        return settings
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    adjusted = settings.model_copy(deep=True)
    adjusted.model.n_threads = max(1, cores - 1)
    return adjusted


class ChatApp(App[None]):
    """A private chat assistant. Give ``settings``/``store``/``backend_factory`` in tests; left
    out, they are loaded from the user's config after the first frame."""

    CSS_PATH = Path(__file__).with_name("chatapp.tcss")  # absolute: subclasses elsewhere work
    TITLE = "chatapp"
    COMMANDS = App.COMMANDS | {ChatCommands}
    MODES: ClassVar[dict[str, Any]] = {App.DEFAULT_MODE: ChatScreen}  # the base screen

    def __init__(
        self,
        settings: Settings | None = None,
        store: ConversationStore | None = None,
        backend_factory: BackendFactory | None = None,
        *,
        conversation_id: int | None = None,
        extensions: UIExtensions | None = None,
        load_extensions: bool = True,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.backend: Backend | None = None
        self.backend_error: str | None = None
        self.extensions = extensions or UIExtensions()
        register_builtin_commands(self.extensions)
        self._backend_factory = backend_factory
        self._backend_ready = threading.Event()
        self._reload_pending = False
        self._load_extensions = load_extensions
        self._initial_conversation = conversation_id
        self._owns_store = store is None
        self.started = False
        theme = settings.ui.theme if settings is not None else peek_theme()
        if theme and theme in self.available_themes:
            self.theme = theme

    @property
    def chat_screen(self) -> ChatScreen:
        """The main screen (the bottom of the screen stack)."""
        screen = self._screen_stacks[self.DEFAULT_MODE][0]
        assert isinstance(screen, ChatScreen)
        self._chat_screen = screen
        return screen

    def on_ready(self) -> None:
        # The first frame is painted; once it has reached the terminal, load settings,
        # history and the model (their imports would otherwise compete with it).
        self.set_timer(FIRST_FRAME_GRACE_S, self._startup_worker)

    # -- startup --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="startup")
    def _startup_worker(self) -> None:
        problems: list[str] = []
        settings = self.settings
        if settings is None:
            from chatapp.config import Settings, load_settings

            try:
                settings = load_settings()
            except ChatappError as exc:
                problems.append(f"{exc.message} (using default settings)")
                settings = Settings.model_construct()
        store = self.store
        if store is None:
            from chatapp.storage import ConversationStore, open_store

            try:
                store = open_store()
            except ChatappError as exc:
                problems.append(f"{exc.message}; this session's chats will not be kept")
                store = ConversationStore(":memory:")
        if self._load_extensions:
            self.extensions.load()
        self.call_from_thread(self._startup_done, settings, store, problems)  # type: ignore[arg-type]

    async def _startup_done(
        self, settings: Settings, store: ConversationStore, problems: list[str]
    ) -> None:
        self.settings = settings
        self.store = store
        if settings.ui.theme in self.available_themes and settings.ui.theme != self.theme:
            self.theme = settings.ui.theme
        for command in self.extensions.commands:
            if command.key:
                self.bind(command.key, f"run_command({command.title!r})", show=False)
        screen = self.chat_screen
        await screen.sidebar.fill()
        screen.refresh_sidebar()
        await screen.open_conversation(self._initial_conversation)
        for problem in problems:
            await screen.chat_view.add_notice(problem, error=True)
        self.started = True
        self.load_backend()

    # -- the model ------------------------------------------------------------------------

    def load_backend(self) -> None:
        """(Re)open the model in a worker; the status line shows progress."""
        self._backend_ready.clear()
        self.backend_error = None
        self.chat_screen.status_bar.show_loading(f"loading model {self._model_label()}…")
        self.chat_screen.header.set_field("model", f"{self._model_label()} (loading)")
        self._load_backend_worker()

    def _model_label(self) -> str:
        return self.settings.model.name if self.settings is not None else "model"

    @work(thread=True, exclusive=True, group="model")
    def _load_backend_worker(self) -> None:
        old, self.backend = self.backend, None
        if old is not None:
            old.close()
        last = [-1.0]

        def progress(fraction: float, text: str) -> None:
            if fraction - last[0] >= 0.02 or fraction >= 1.0:
                last[0] = fraction
                self.post_message(ModelLoadProgress(fraction, text))

        backend, error = None, None
        try:
            if self._backend_factory is not None:
                backend = self._backend_factory()
            else:
                from chatapp.engine.factory import create_backend

                assert self.settings is not None
                backend = create_backend(ui_model_settings(self.settings), on_progress=progress)
        except ChatappError as exc:
            error = exc.message
        except Exception as exc:  # llama.cpp can fail in ways it does not name
            log.exception("model failed to load")
            error = f"{type(exc).__name__}: {exc}"
        self.backend, self.backend_error = backend, error
        self._backend_ready.set()
        self.post_message(ModelLoaded(error))

    def on_model_load_progress(self, message: ModelLoadProgress) -> None:
        self.chat_screen.status_bar.show_loading(message.text, message.fraction)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        screen = self.chat_screen
        if message.error is not None or self.backend is None:
            text = f"model failed to load: {message.error}"
            screen.status_bar.failed(text)
            screen.header.set_field("model", f"{self._model_label()} (not loaded)")
            self.notify(text + " (history stays browsable)", severity="error", timeout=10)
            return
        identity = self.backend.identity
        screen.header.set_field("model", identity.name)
        if not screen.reply_running():
            screen.status_bar.ready(f"ready · {identity.name} · context {self.backend.n_ctx:,}")

    def wait_for_backend(self, cancel: CancelToken) -> Backend | None:
        """Block (in a worker) until the model is loaded; None if cancelled meanwhile."""
        while not self._backend_ready.wait(0.05):
            if cancel.cancelled:
                return None
        if self.backend is None:
            raise ChatappError(f"no model loaded: {self.backend_error or 'unknown problem'}")
        return self.backend

    def after_reply(self) -> None:
        if self._reload_pending:
            self._reload_pending = False
            self.load_backend()

    def request_backend_reload(self) -> None:
        """Reopen the model with the current settings, after the reply in progress if any."""
        if self.chat_screen.reply_running():
            self._reload_pending = True
            self.notify("The model reopens with the new settings after this reply.")
        else:
            self.load_backend()

    # -- turns ----------------------------------------------------------------------------

    def turn_runner(
        self,
        kind: str,
        conversation_id: int | None,
        text: str,
        options: TurnOptions | None,
        message_id: int | None,
    ) -> Callable[[CancelToken], Iterator[TurnEvent]]:
        """What the generation worker runs: wait for the model, prepare the turn (extension
        preparers: templates, retrieved sources), then stream it through a ChatSession."""
        settings, store = self.settings, self.store
        preparers = list(self.extensions.turn_preparers)

        def run(cancel: CancelToken) -> Iterator[TurnEvent]:
            from chatapp.engine.factory import generation_params
            from chatapp.session import ChatSession, TurnOptions

            assert settings is not None and store is not None
            backend = self.wait_for_backend(cancel)
            if backend is None:
                return iter(())
            session = ChatSession(
                backend,
                store,
                conversation_id=conversation_id,
                system_prompt=None if conversation_id is not None else settings.chat.system_prompt,
                params=generation_params(settings),
            )
            prepared = options
            if preparers:
                prepared = prepared or TurnOptions()
                for prepare in preparers:
                    prepared = prepare(self, text, prepared)
            if kind == "regenerate":
                return session.regenerate(prepared, cancel)
            if kind == "edit":
                assert message_id is not None
                return session.edit(message_id, text, prepared, cancel)
            if conversation_id is None:
                # Check the first prompt fits before the session creates a conversation for it.
                session.plan(text, prepared)
            return session.send(text, prepared, cancel)

        return run

    def send_turn(self, text: str, options: TurnOptions | None = None) -> None:
        """Send a user turn with explicit TurnOptions (for extensions)."""
        self.chat_screen.send_turn(text, options)

    def sources_widget(self, message: Message) -> Widget | None:
        renderer = self.extensions.sources_renderer
        if renderer is not None:
            return renderer(message)
        from textual.widgets import Static

        from chatapp.ui.widgets.message import source_label

        lines = [source_label(s, i) for i, s in enumerate(message.sources or [], start=1)]
        return Static("\n".join(["Sources:", *lines]), classes="sources", markup=False)

    # -- settings, theme, screens ---------------------------------------------------------

    def apply_settings(self, settings: Settings, *, reload_model: bool) -> None:
        """Adopt and save new settings (from the settings screen or an extension)."""
        from chatapp.config import save_settings

        self.settings = settings
        try:
            save_settings(settings)
        except OSError as exc:
            self.notify(f"settings not saved: {exc}", severity="error")
        if reload_model:
            self.request_backend_reload()

    def watch_theme(self, theme: str) -> None:
        if self.settings is None or not self.started or self.settings.ui.theme == theme:
            return
        self.settings.ui.theme = theme
        self.apply_settings(self.settings, reload_model=False)

    def open_settings(self) -> None:
        from chatapp.ui.screens.settings import SettingsScreen

        if self.settings is None:
            return

        def saved(result: tuple[Settings, bool] | None) -> None:
            if result is not None:
                self.apply_settings(result[0], reload_model=result[1])
                self.notify("Settings saved.")

        self.push_screen(SettingsScreen(self.settings), saved)

    def open_help(self) -> None:
        from chatapp.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.extensions.commands))

    def action_open_screen(self, name: str) -> None:
        factory = self.extensions.screens.get(name)
        if factory is None:
            self.notify(f"screen {name!r}: not available", severity="warning")
        else:
            self.push_screen(factory(self))

    async def action_run_command(self, title: str) -> None:
        command = next((c for c in self.extensions.commands if c.title == title), None)
        if command is None:
            return
        if isinstance(command.action, str):
            await self.run_action(command.action, self.chat_screen)
        else:
            result = command.action(self)
            if hasattr(result, "__await__"):
                await result

    # -- clipboard and export -------------------------------------------------------------

    def copy_text(self, text: str, what: str = "text") -> None:
        """Copy through the terminal (OSC 52) and, where one exists, the system clipboard."""
        self.copy_to_clipboard(text)
        self._copy_with_pyperclip(text)
        self.notify(f"Copied {what} ({len(text):,} characters).")

    @work(thread=True, group="clipboard")
    def _copy_with_pyperclip(self, text: str) -> None:
        try:
            import pyperclip

            pyperclip.copy(text)
        except Exception:  # no clipboard program (headless, SSH): OSC 52 already did its best
            pass

    def export_directory(self) -> Path:
        import platformdirs

        return Path(platformdirs.user_downloads_dir())

    def export_conversation(self, conversation_id: int, fmt: str, folder: Path) -> None:
        from chatapp.storage.export import export_json, export_markdown

        assert self.store is not None
        text = (export_json if fmt == "json" else export_markdown)(self.store, conversation_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify(f"folder {folder}: cannot be created ({exc})", severity="error")
            return
        self.deliver_text(
            StringIO(text),
            save_directory=folder,
            save_filename=f"chatapp-conversation-{conversation_id}.{fmt}",
            encoding="utf-8",
        )

    def on_delivery_complete(self, event: DeliveryComplete) -> None:
        where = f" to {event.path}" if event.path else ""
        self.notify(f"Exported{where}.")

    def on_delivery_failed(self, event: DeliveryFailed) -> None:
        self.notify(f"export failed: {event.exception}", severity="error")

    # -- quitting -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop a reply in progress (its partial text is kept), then leave."""
        screen = self.chat_screen
        if screen.reply is not None and screen.reply.worker is not None:
            screen.reply.stop()
            await screen.reply.worker.wait()
        self.exit()

    def stop_generation(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop any reply and wait until it is stored (safe after the app has exited)."""
        screen: ChatScreen | None = getattr(self, "_chat_screen", None)
        if screen is not None:
            screen.stop_reply_blocking(timeout)

    def close_resources(self) -> None:
        """After the app exits: store a reply in progress, then close the model and store."""
        self.stop_generation()
        if self.backend is not None:
            self.backend.close()
        if self.store is not None and self._owns_store:
            self.store.close()


def run_app(settings: Settings | None = None, *, conversation_id: int | None = None) -> None:
    """Open the chat UI in this terminal. ``settings`` None loads them after the first frame
    (the fastest start); a stored ``conversation_id`` opens that conversation."""
    app = ChatApp(settings, conversation_id=conversation_id)
    try:
        app.run()
    finally:
        app.close_resources()
