"""A thinking model's reasoning, folded above its answer.

While the model thinks, the block streams the last few lines of its reasoning, dimmed, under
"Thinking… 4 s"; when the answer begins it folds to one line ("▸ Thought for 12 s"). ``t`` on
the message (or a click on the line) unfolds the whole reasoning and folds it again. A stored
reply draws the same block from its stored reasoning and its ``reasoning_s`` stat, so a
conversation reopened after a restart looks as it did.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from chatapp.terminal_text import safe_for_terminal

LIVE_LINES = 4
"""Lines of reasoning shown while the model is still thinking (the newest ones)."""

_LIVE_TAIL_CHARS = 2_000
"""Only this much of the end of the reasoning is looked at to find the newest lines."""

TOGGLE_KEY = "t"


def thought_for(seconds: float | None) -> str:
    """``12 s``, ``1 min 5 s``; empty when the time is not known."""
    if seconds is None or seconds <= 0:
        return ""
    if seconds < 0.1:
        return "<0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60} s"


def reasoning_title(text: str, seconds: float | None, *, live: bool, expanded: bool) -> Text:
    """The block's first line: its state, how long the model thought, and the key."""
    arrow = "▾" if expanded else "▸"
    took = thought_for(seconds)
    if live:
        label = f"Thinking… {took}".rstrip()
    elif took:
        label = f"Thought for {took}"
    else:
        label = f"Thought ({len(text.split()):,} words)"
    title = Text(
        f"{arrow} {label}", style=Style(dim=True, bold=True, meta={"@click": "toggle_reasoning"})
    )
    hint = "hide" if expanded else "show"
    title.append(f"  ({TOGGLE_KEY}: {hint})", style="dim")
    return title


def render_reasoning(
    text: str, seconds: float | None, *, live: bool, expanded: bool
) -> RenderableType:
    """The folded (or unfolded) reasoning block as one renderable."""
    title = reasoning_title(text, seconds, live=live, expanded=expanded)
    if expanded:
        shown = text.strip()
    elif live:
        lines = [line for line in text[-_LIVE_TAIL_CHARS:].splitlines() if line.strip()]
        shown = "\n".join(lines[-LIVE_LINES:])
    else:
        return title
    if not shown:
        return title
    # Reasoning is model text: its control characters are shown, never sent to the terminal.
    body = Text(safe_for_terminal(shown), style="dim italic")
    return Group(title, Padding(body, (0, 0, 0, 2)))


class ReasoningBlock(Static):
    """The reasoning of the reply being streamed (a finished reply draws it itself)."""

    DEFAULT_CSS = """
    ReasoningBlock { height: auto; }
    """

    def __init__(self, text: str = "", seconds: float | None = None, *, live: bool) -> None:
        super().__init__(classes="message-reasoning")
        self.text = text
        self.seconds = seconds
        self.live = live
        self.expanded = False

    def on_mount(self) -> None:
        self._draw()

    def drawing(self) -> RenderableType:
        """What the block shows now."""
        return render_reasoning(self.text, self.seconds, live=self.live, expanded=self.expanded)

    def _draw(self) -> None:
        self.update(self.drawing())

    def grow(self, text: str, seconds: float | None) -> None:
        """More reasoning arrived (the model is still thinking)."""
        self.text += text
        self.seconds = seconds
        self._draw()

    def end(self, seconds: float | None) -> None:
        """The answer began: fold to one line."""
        if not self.live:
            return
        self.live = False
        self.seconds = seconds
        self._draw()

    def set_expanded(self, expanded: bool) -> None:
        self.expanded = expanded
        self._draw()

    def action_toggle_reasoning(self) -> None:
        # A click on the title: the message keeps the state, so it survives the reply's end.
        message = self.parent
        toggle = getattr(message, "action_toggle_reasoning", None)
        if toggle is not None:
            toggle()
        else:
            self.set_expanded(not self.expanded)
