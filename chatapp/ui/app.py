"""The chatapp Textual application: startup, the model, settings, theme, quitting.

Startup paints the first frame before anything heavy is imported: settings (pydantic), the
conversation store and the extension modules load in a thread worker after the first frame, and
the model (llama.cpp) loads in another (chatapp.ui.model_loading), reporting progress in the
status line. Until it is ready the history can be browsed and a prompt can be typed; a prompt
sent early waits for the model. What screens need of the app travels in a ``ChatContext``.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App
from textual.events import DeliveryComplete, DeliveryFailed
from textual.widget import AwaitMount

from chatapp.errors import ChatappError
from chatapp.ui.chat_context import ChatContext
from chatapp.ui.commands import ChatCommands, register_builtin_commands
from chatapp.ui.extensions import UIExtensions
from chatapp.ui.messages import ModelLoaded, ModelLoadProgress, ReplyFinished
from chatapp.ui.model_loading import BackendFactory
from chatapp.ui.screens.chat import ChatScreen

if TYPE_CHECKING:
    from textual.driver import Driver

    from chatapp.config import Settings
    from chatapp.engine.base import Backend
    from chatapp.session import TurnRequest
    from chatapp.storage import ConversationStore

__all__ = ["ChatApp", "run_app"]

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


class ChatApp(App[None]):
    """A private chat assistant. Give ``settings``/``store``/``backend_factory`` in tests; left
    out, they are loaded from the user's config after the first frame."""

    CSS_PATH = Path(__file__).with_name("chatapp.tcss")  # absolute: subclasses elsewhere work
    TITLE = "chatapp"
    COMMANDS = App.COMMANDS | {ChatCommands}

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
        self.context = ChatContext(settings, store, backend_factory)
        self.extensions = extensions or UIExtensions()
        super().__init__()
        register_builtin_commands(self.extensions)
        self._reload_pending = False
        self._load_extensions = load_extensions
        self._initial_conversation = conversation_id
        self._owns_store = store is None
        self.started = False
        self.exit_signal: int | None = None
        theme = settings.ui.theme if settings is not None else peek_theme()
        if theme and theme in self.available_themes:
            self.theme = theme
        # The base screen, made here so it can be given the context (get_default_screen).
        self._chat_screen = ChatScreen(self.context, self._render_sources)

    def get_driver_class(self) -> type[Driver]:
        """In a Linux terminal, a driver that hands a paste typed as keys over as one paste."""
        from textual.drivers.linux_driver import LinuxDriver

        driver = super().get_driver_class()
        if driver is LinuxDriver:
            from chatapp.ui.paste_driver import PasteRunDriver

            return PasteRunDriver
        return driver

    def get_default_screen(self) -> ChatScreen:
        # The default screen rather than an installed one named in MODES: Textual re-parses
        # and re-applies all CSS before the first frame for a MODES screen (~70 ms).
        return self._chat_screen

    async def on_mount(self) -> None:
        # As for a MODES screen, the app is mounted once the chat screen's parts are.
        await AwaitMount(self._chat_screen, [self._chat_screen])

    def _render_sources(self, message: Any) -> Any:
        renderer = self.extensions.sources_renderer
        return renderer(message) if renderer is not None else None

    # -- what extensions and tests read ---------------------------------------------------

    @property
    def chat_screen(self) -> ChatScreen:
        """The main screen (the bottom of the screen stack)."""
        return self._chat_screen

    @property
    def settings(self) -> Settings | None:
        return self.context.settings

    @property
    def store(self) -> ConversationStore | None:
        return self.context.store

    @property
    def backend(self) -> Backend | None:
        """The loaded model (None while it loads or after it failed)."""
        return self.context.model.backend

    @property
    def backend_error(self) -> str | None:
        return self.context.model.error

    def send_request(self, request: TurnRequest) -> None:
        """Send a turn on the chat screen (for extensions)."""
        self.chat_screen.send_request(request)

    def on_ready(self) -> None:
        # The first frame is painted; once it has reached the terminal, load settings,
        # history and the model (their imports would otherwise compete with it).
        self.set_timer(FIRST_FRAME_GRACE_S, self._startup_worker)

    # -- startup --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="startup")
    def _startup_worker(self) -> None:
        problems: list[str] = []
        settings = self.context.settings
        if settings is None:
            from chatapp.config import Settings, load_settings

            try:
                settings = load_settings()
            except ChatappError as exc:
                problems.append(f"{exc.message} (using default settings)")
                settings = Settings.model_construct()
        store = self.context.store
        if store is None:
            from chatapp.storage import ConversationStore, open_store

            try:
                store = open_store()
            except ChatappError as exc:
                problems.append(f"{exc.message}; this session's chats will not be kept")
                store = ConversationStore(":memory:")
        if self._load_extensions:
            register_pickers(self.extensions)
        self.call_from_thread(self._startup_done, settings, store, problems)  # type: ignore[arg-type]

    async def _startup_done(
        self, settings: Settings, store: ConversationStore, problems: list[str]
    ) -> None:
        self.context.settings = settings
        self.context.store = store
        if settings.ui.theme in self.available_themes and settings.ui.theme != self.theme:
            self.theme = settings.ui.theme
        for command in self.extensions.commands:
            if command.key:
                self.bind(command.key, f"run_command({command.title!r})", show=False)
        screen = self.chat_screen
        if settings.ui.collection:  # the collection picked last time, on or off as it was
            screen.set_documents(settings.ui.collection, settings.ui.documents)
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
        self.context.model.begin()
        self.chat_screen.status_bar.show_loading(f"loading model {self._model_label()}…")
        self.chat_screen.header.set_field("model", f"{self._model_label()} (loading)")
        self._load_backend_worker()

    def _model_label(self) -> str:
        settings = self.context.settings
        return settings.model.name if settings is not None else "model"

    @work(thread=True, exclusive=True, group="model")
    def _load_backend_worker(self) -> None:
        last = [-1.0]

        def progress(fraction: float, text: str) -> None:
            if fraction - last[0] >= 0.02 or fraction >= 1.0:
                last[0] = fraction
                self.post_message(ModelLoadProgress(fraction, text))

        error = self.context.model.load(self.context.settings, progress)
        self.post_message(ModelLoaded(error))

    def on_model_load_progress(self, message: ModelLoadProgress) -> None:
        self.chat_screen.status_bar.show_loading(message.text, message.fraction)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        # What is loaded by now (Textual, the model, settings, history) lives as long as the
        # app: kept out of the cyclic collector's sight, a full collection while a reply
        # streams takes ~30 ms instead of ~100 ms (it stalls the UI and the model's thread).
        gc.freeze()
        screen = self.chat_screen
        backend = self.context.model.backend
        if message.error is not None or backend is None:
            text = f"model failed to load: {message.error}"
            screen.status_bar.failed(text)
            screen.header.set_field("model", f"{self._model_label()} (not loaded)")
            self.notify(text + " (history stays browsable)", severity="error", timeout=10)
            return
        identity = backend.identity
        screen.header.set_field("model", identity.name)
        screen.show_thinking_choice()
        if not screen.reply_running():
            screen.status_bar.ready(f"ready · {identity.name} · context {backend.n_ctx:,}")

    def on_reply_finished(self, message: ReplyFinished) -> None:
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

    # -- settings, theme, screens ---------------------------------------------------------

    def apply_settings(self, settings: Settings, *, reload_model: bool) -> bool:
        """Adopt and save new settings (from the settings screen or an extension); False when
        they could not be saved. Saving over a config file with settings that cannot be used
        keeps the others and says what was dropped and where the old file went."""
        from chatapp.config import load_settings, repair_settings_files, save_settings
        from chatapp.errors import ChatappError

        self.context.use_settings(settings)
        try:
            repairs = repair_settings_files()
            save_settings(settings)
        except OSError as exc:
            self.notify(f"settings not saved: {exc}", severity="error", markup=False)
            return False
        for repair in repairs:
            self.notify(repair.message(), severity="warning", timeout=20, markup=False)
        if repairs:
            # The file loads again: what it kept (a system prompt) now applies here too.
            with contextlib.suppress(ChatappError):
                self.context.use_settings(load_settings())
        self.chat_screen.show_thinking_choice()
        if reload_model:
            self.request_backend_reload()
        return True

    def watch_theme(self, theme: str) -> None:
        settings = self.context.settings
        if settings is None or not self.started or settings.ui.theme == theme:
            return
        settings.ui.theme = theme
        self.apply_settings(settings, reload_model=False)

    def action_open_settings(self) -> None:
        from chatapp.ui.screens.settings import SettingsScreen

        if self.context.settings is None:
            return

        def saved(result: tuple[Settings, bool] | None) -> None:
            if result is not None and self.apply_settings(result[0], reload_model=result[1]):
                self.notify("Settings saved.")

        self.push_screen(SettingsScreen(self.context.settings), saved)

    def action_open_help(self) -> None:
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

    def on_delivery_complete(self, event: DeliveryComplete) -> None:
        where = f" to {event.path}" if event.path else ""
        self.notify(f"Exported{where}.")

    def on_delivery_failed(self, event: DeliveryFailed) -> None:
        self.notify(f"export failed: {event.exception}", severity="error")

    # -- quitting -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Stop a reply in progress (its partial text is kept), then leave."""
        reply = self.chat_screen.reply
        if reply is not None and reply.worker is not None:
            reply.stop()
            await reply.worker.wait()
        self.exit()

    def stop_generation(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop any reply and wait until it is stored (safe after the app has exited)."""
        screen: ChatScreen | None = getattr(self, "_chat_screen", None)
        if screen is not None:
            screen.stop_reply_blocking(timeout)

    def close_resources(self) -> None:
        """After the app exits: store a reply in progress, then close the model and store."""
        self.stop_generation()
        self.context.close(close_store=self._owns_store)


def register_pickers(ui: UIExtensions) -> None:
    """The template picker (Ctrl+G), document collections (Ctrl+F, Alt+D, the sources panel)
    and the model picker (F9). Imported here, in the startup worker after the first frame."""
    from chatapp.ui.screens import collections, models, templates

    templates.register(ui)
    collections.register(ui)
    models.register(ui)


def run_app(settings: Settings | None = None, *, conversation_id: int | None = None) -> None:
    """Open the chat UI in this terminal. ``settings`` None loads them after the first frame
    (the fastest start); a stored ``conversation_id`` opens that conversation. SIGTERM or
    SIGHUP store the reply being written and exit with 128 + the signal."""
    from chatapp.ui.exit_on_signal import end_on_signals

    app = ChatApp(settings, conversation_id=conversation_id)
    restore_handlers = end_on_signals(app)
    try:
        app.run()
    finally:
        app.close_resources()
        restore_handlers()
    if app.exit_signal is not None:
        raise SystemExit(128 + app.exit_signal)
