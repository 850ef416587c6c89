"""The status line above the key bar: model loading progress, generation state, live stats
(tokens per second, context used / size)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

BAR_CELLS = 20


def progress_bar(fraction: float) -> str:
    """``████████░░░░ 40%`` (text, so the status line stays one light widget)."""
    fraction = max(0.0, min(1.0, fraction))
    filled = round(BAR_CELLS * fraction)
    return "█" * filled + "░" * (BAR_CELLS - filled) + f" {round(100 * fraction)}%"


class StatusBar(Horizontal):
    """What chatapp is doing right now, and what the last reply cost."""

    def compose(self) -> ComposeResult:
        yield Static("starting…", id="status-state", markup=False)
        yield Static("", id="status-stats", markup=False)

    def _state(self, content: Content | str) -> None:
        self.query_one("#status-state", Static).update(content)

    def _stats(self, content: Content | str) -> None:
        self.query_one("#status-stats", Static).update(content)

    def show_loading(self, what: str, fraction: float | None = None) -> None:
        """Model loading, with a bar once the backend reports how far it is."""
        bar = f"  {progress_bar(fraction)}" if fraction is not None else ""
        self._state(Content.assemble("⏳ ", what, (bar, "$accent")))

    def ready(self, text: str = "ready") -> None:
        self._state(text)

    def failed(self, text: str) -> None:
        self._state(Content.styled(text, "$error"))

    def generating(
        self, tokens: int, tokens_per_s: float | None, context_used: int, n_ctx: int
    ) -> None:
        self._state(Content.styled("generating… (Esc stops)", "$accent"))
        self._stats(self._format(tokens, tokens_per_s, context_used, n_ctx))

    def finished(
        self, text: str, tokens: int, tokens_per_s: float | None, context_used: int, n_ctx: int
    ) -> None:
        self._state(text)
        self._stats(self._format(tokens, tokens_per_s, context_used, n_ctx))

    def clear_stats(self) -> None:
        self._stats("")

    @staticmethod
    def _format(tokens: int, tokens_per_s: float | None, used: int, n_ctx: int) -> str:
        rate = f"{tokens_per_s:.1f} tok/s" if tokens_per_s else "— tok/s"
        context = f"ctx {used:,}/{n_ctx:,}" if n_ctx else "ctx —"
        return f"{tokens} tokens · {rate} · {context}"
