"""The model picker: installed models and the catalog with a fit hint for this machine, downloads
with a progress bar, and switching the chat's model without restarting chatapp.

Opened from the command palette ("Models: choose or download") or F9. Enter uses the selected
model (downloading it first if needed), D downloads it, S stops a download (the partial file
stays and the next download resumes it), Esc closes (stopping a download in progress). Downloads and the model list run in thread
workers; this screen reaches models/ only through its functions (pull_model, model_rows).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, ProgressBar, Static

from chatapp.domain import CancelToken
from chatapp.errors import ChatappError

if TYPE_CHECKING:
    from chatapp.models.listing import ModelRow
    from chatapp.ui.extensions import ExtensionHost, UIExtensions

SCREEN_NAME = "models"
OPEN_KEY = "f9"
_FIT_STYLE = {"fits": "green", "tight": "yellow", "too big": "red"}


def register(ui: UIExtensions) -> None:
    """Add the picker to the app: a named screen and a palette command with a key."""
    ui.add_screen(SCREEN_NAME, lambda app: ModelPickerScreen())
    ui.add_command(
        "Models: choose or download",
        "Installed and catalog models with fit hints; download, switch model",
        lambda app: app.action_open_screen(SCREEN_NAME),
        key=OPEN_KEY,
        group="Models",
    )


def _gb(value: int | None) -> str:
    return "" if value is None else f"{value / 1e9:.1f} GB"


class ModelPickerScreen(ModalScreen[None]):
    """Pick the chat model; download catalog models in place."""

    DEFAULT_CSS = """
    ModelPickerScreen { align: center middle; }
    ModelPickerScreen #models-dialog {
        width: 96; max-width: 100%; height: 90%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    ModelPickerScreen #models-table { height: 1fr; }
    ModelPickerScreen #models-detail { height: auto; min-height: 2; color: $text-muted; }
    ModelPickerScreen #models-download { height: auto; }
    ModelPickerScreen #models-download.idle { display: none; }
    ModelPickerScreen #models-buttons { height: auto; align-horizontal: right; }
    ModelPickerScreen #models-buttons Button { margin-left: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "use", "Use", priority=True),
        Binding("d", "download", "Download"),
        Binding("s", "stop_download", "Stop download"),
    ]

    class DownloadProgress(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class DownloadFinished(Message):
        """``error`` None: ``name`` is installed; ``then_use``: switch to it now."""

        def __init__(self, name: str, error: str | None, then_use: bool) -> None:
            super().__init__()
            self.name, self.error, self.then_use = name, error, then_use

    class RowsLoaded(Message):
        def __init__(self, rows: list[ModelRow] | None, memory: str, error: str | None) -> None:
            super().__init__()
            self.rows, self.memory, self.error = rows, memory, error

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ModelRow] = {}
        self.downloading: str | None = None
        self._cancel: CancelToken | None = None

    @property
    def chat_app(self) -> ExtensionHost:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="models-dialog"):
            yield Label("[b]Models[/b]  Enter: use · D: download · S: stop download · Esc: close")
            yield Static("", id="models-machine")
            table: DataTable[str] = DataTable(
                id="models-table", cursor_type="row", zebra_stripes=True
            )
            yield table
            yield Static("", id="models-detail")
            with Vertical(id="models-download", classes="idle"):
                yield Label("", id="models-download-label")
                yield ProgressBar(id="models-progress", show_eta=True)
            with Horizontal(id="models-buttons"):
                yield Button("Use", id="models-use", variant="primary")
                yield Button("Download", id="models-get")
                yield Button("Close", id="models-close")

    def on_mount(self) -> None:
        table = self.query_one("#models-table", DataTable)
        for column in ("", "name", "status", "quant", "size", "RAM", "fit", "ctx", "ko"):
            table.add_column(column, key=column or "mark")
        table.focus()
        self.reload_rows()

    # -- the list ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="models-list")
    def reload_rows(self) -> None:
        from chatapp.models.hardware import machine_memory
        from chatapp.models.listing import model_rows

        default = self.chat_app.settings.model.name if self.chat_app.settings else ""
        try:
            memory = machine_memory()
            rows = model_rows(default, memory)
            self.post_message(self.RowsLoaded(rows, memory.describe(), None))
        except ChatappError as exc:
            self.post_message(self.RowsLoaded(None, "", exc.message))

    def on_model_picker_screen_rows_loaded(self, message: RowsLoaded) -> None:
        if message.error is not None or message.rows is None:
            self.query_one("#models-detail", Static).update(f"[red]{message.error}[/]")
            return
        table = self.query_one("#models-table", DataTable)
        selected = self.selected_name()
        table.clear()
        self.rows = {row.name: row for row in message.rows}
        for row in message.rows:
            status = {"installed": row.source, "missing": "MISSING", "available": "download"}
            fit = f"[{_FIT_STYLE.get(row.fit or '', '')}]{row.fit}[/]" if row.fit else ""
            table.add_row(
                "*" if row.default else "",
                row.name,
                status[row.status],
                row.quant or "",
                _gb(row.size_bytes),
                _gb(row.ram_bytes),
                fit,
                f"{row.context // 1024}K" if row.context else "",
                "한" if row.korean else "",
                key=row.name,
            )
        if selected in self.rows:
            table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#models-machine", Static).update(
            f"{message.memory} · * current default · ko: Korean listed as supported"
        )
        self._show_detail()

    def selected_name(self) -> str | None:
        table = self.query_one("#models-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def select(self, name: str) -> None:
        """Move the cursor to ``name`` (for keyboard users and tests)."""
        table = self.query_one("#models-table", DataTable)
        table.move_cursor(row=table.get_row_index(name))

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        row = self.rows.get(self.selected_name() or "")
        if row is None:
            return
        parts = [row.title]
        if row.repo:
            parts.append(row.repo)
        if row.license:
            parts.append(f"license {row.license}")
        if row.status == "missing":
            parts.append(f"[red]file missing: {row.path}[/]")
        elif row.fit == "too big":
            parts.append("[red]needs more memory than this machine has[/]")
        elif row.fit == "tight":
            parts.append("[yellow]close other programs first[/]")
        self.query_one("#models-detail", Static).update(" · ".join(parts))

    # -- actions ----------------------------------------------------------------------------

    def action_close(self) -> None:
        if self.downloading and self._cancel is not None:
            # The worker belongs to this screen; the partial file stays for the next download.
            self._cancel.cancel()
            self.notify(f"Download of {self.downloading} stopped; downloading it again resumes.")
        self.dismiss(None)

    def action_use(self) -> None:
        row = self.rows.get(self.selected_name() or "")
        if row is None:
            return
        if row.status == "missing":
            self.notify(f"model {row.name}: its file is gone ({row.path})", severity="error")
        elif row.status == "available":
            self._start_download(row.name, then_use=True)
        else:
            self.switch_to(row.name)

    def action_download(self) -> None:
        row = self.rows.get(self.selected_name() or "")
        if row is not None and row.status == "available":
            self._start_download(row.name, then_use=False)
        elif row is not None:
            self.notify(f"{row.name} is already installed")

    def action_stop_download(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    @on(Button.Pressed, "#models-use")
    def _use_pressed(self) -> None:
        self.action_use()

    @on(Button.Pressed, "#models-get")
    def _get_pressed(self) -> None:
        self.action_download()

    @on(Button.Pressed, "#models-close")
    def _close_pressed(self) -> None:
        self.action_close()

    # -- switching --------------------------------------------------------------------------

    def switch_to(self, name: str) -> None:
        """Make ``name`` the chat's model now (saved as the default) and reopen the engine."""
        from chatapp.models.hardware import memory_warning
        from chatapp.models.registry import resolve_model_path

        app = self.chat_app
        if app.settings is None:
            return
        try:
            path = resolve_model_path(name)
        except ChatappError as exc:
            self.notify(exc.message, severity="error")
            return
        warning = memory_warning(path, app.settings.model.n_ctx)
        if warning:
            self.notify(warning, severity="warning", timeout=10)
        settings = app.settings.model_copy(deep=True)
        settings.model.name = name
        if settings.backend.kind == "openai":
            settings.backend.kind = "llama_cpp"  # a local model runs in-process
        app.apply_settings(settings, reload_model=True)
        self.notify(f"Switching to {name}.")
        self.dismiss(None)

    # -- downloading ------------------------------------------------------------------------

    def _start_download(self, name: str, then_use: bool) -> None:
        if self.downloading:
            self.notify(f"{self.downloading} is still downloading", severity="warning")
            return
        self.downloading = name
        self._cancel = CancelToken()
        box = self.query_one("#models-download")
        box.remove_class("idle")
        self.query_one("#models-download-label", Label).update(f"downloading {name}…")
        self.query_one("#models-progress", ProgressBar).update(total=None, progress=0)
        self._download_worker(name, then_use, self._cancel)

    @work(thread=True, group="models-download")
    def _download_worker(self, name: str, then_use: bool, cancel: CancelToken) -> None:
        from chatapp.models.download import pull_model

        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 or done >= total:
                last[0] = now
                self.post_message(self.DownloadProgress(done, total))

        error: str | None = None
        try:
            pull_model(name, on_progress=progress, cancel=cancel)
        except ChatappError as exc:
            error = exc.message
        except Exception as exc:  # a network library failing in a way it does not name
            error = f"{type(exc).__name__}: {exc}"
        self.post_message(self.DownloadFinished(name, error, then_use))

    def on_model_picker_screen_download_progress(self, message: DownloadProgress) -> None:
        bar = self.query_one("#models-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.query_one("#models-download-label", Label).update(
            f"downloading {self.downloading}: {message.done / 1e9:.2f} of "
            f"{message.total / 1e9:.2f} GB"
        )

    def on_model_picker_screen_download_finished(self, message: DownloadFinished) -> None:
        self.downloading, self._cancel = None, None
        self.query_one("#models-download").add_class("idle")
        if message.error is not None:
            self.notify(message.error, severity="error", timeout=10)
            self.reload_rows()
            return
        self.notify(f"{message.name} downloaded and verified.")
        if message.then_use and self.is_attached:
            self.switch_to(message.name)
        else:
            self.reload_rows()
