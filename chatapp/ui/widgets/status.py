"""The status line above the key bar: model loading progress, generation state, live stats
(tokens per second, context used / size). One widget: state on the left, stats on the right,
drawn as one line of text (a Rich table grid cost ~1 ms a frame while a reply streams)."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from chatapp.terminal_text import safe_for_terminal

BAR_CELLS = 20


def progress_bar(fraction: float) -> str:
    """``████████░░░░ 40%`` (text, so the status line stays one light widget)."""
    fraction = max(0.0, min(1.0, fraction))
    filled = round(BAR_CELLS * fraction)
    return "█" * filled + "░" * (BAR_CELLS - filled) + f" {round(100 * fraction)}%"


class _Line:
    """A line drawn by Rich as it is, spaces included (as the table grid was)."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.text


class StatusBar(Widget):
    """What chatapp is doing right now, and what the last reply cost."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = Text("starting…")
        self.stats = ""

    @property
    def state_text(self) -> str:
        return self.state.plain

    def render(self) -> RenderableType:
        width = self.size.width
        # Narrow terminals keep the state; the numbers give way.
        show_stats = bool(self.stats) and not self.screen.has_class("-narrow")
        stats = Text(self.stats, style="dim") if show_stats else Text()
        room = max(0, width - stats.cell_len)
        line = self.state.copy()
        line.no_wrap = True
        if cell_len(line.plain) > room:
            line.truncate(room, overflow="ellipsis")
        line.pad_right(room - line.cell_len)
        line.append_text(stats)
        return _Line(line)

    def _color(self, name: str, fallback: str) -> str:
        theme = self.app.current_theme if self.is_attached else None
        return str(getattr(theme, name, None) or fallback)

    def _set(self, state: Text, stats: str | None = None) -> None:
        if state == self.state and (stats is None or stats == self.stats):
            return
        self.state = state
        if stats is not None:
            self.stats = stats
        self.refresh()

    def show_loading(self, what: str, fraction: float | None = None) -> None:
        """Model loading, with a bar once the backend reports how far it is."""
        state = Text(f"⏳ {safe_for_terminal(what)}")
        if fraction is not None:
            state.append(f"  {progress_bar(fraction)}", style=self._color("accent", "cyan"))
        self._set(state)

    def ready(self, text: str = "ready") -> None:
        self._set(Text(safe_for_terminal(text)))

    def failed(self, text: str) -> None:
        # Errors can quote a server's reply or a file name: shown escaped, never obeyed.
        self._set(Text(safe_for_terminal(text), style=self._color("error", "red")))

    def generating(
        self, tokens: int, tokens_per_s: float | None, context_used: int, n_ctx: int
    ) -> None:
        state = Text("generating… (Esc stops)", style=self._color("accent", "cyan"))
        self._set(state, self._format(tokens, tokens_per_s, context_used, n_ctx))

    def finished(
        self, text: str, tokens: int, tokens_per_s: float | None, context_used: int, n_ctx: int
    ) -> None:
        self._set(Text(text), self._format(tokens, tokens_per_s, context_used, n_ctx))

    def clear_stats(self) -> None:
        self.stats = ""
        self.refresh()

    @staticmethod
    def _format(tokens: int, tokens_per_s: float | None, used: int, n_ctx: int) -> str:
        rate = f"{tokens_per_s:.1f} tok/s" if tokens_per_s else "— tok/s"
        context = f"ctx {used:,}/{n_ctx:,}" if n_ctx else "ctx —"
        return f"{tokens} tokens · {rate} · {context}"
