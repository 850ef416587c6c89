"""The top line: the conversation's title on the left; model, thinking (for a model that thinks),
template and document collection on the right. Extensions set their own fields with ``set_field``."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from chatapp.terminal_text import safe_for_terminal

FIELD_ORDER = ("model", "thinking", "template", "collection")


class ChatHeader(Horizontal):
    """Title and the fields that say what the next reply will use."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = "New chat"
        self.fields: dict[str, str | None] = {"model": "loading…"}

    def compose(self) -> ComposeResult:
        yield Static(self._title_content(), id="header-title", markup=False)
        yield Static(self._fields_content(), id="header-fields", markup=False)

    def _title_content(self) -> Content:
        # A title comes from the user's first message: its control characters shown escaped.
        return Content.assemble(("chatapp", "bold $accent"), "  ", safe_for_terminal(self.title))

    def _fields_content(self) -> Content:
        names = [n for n in FIELD_ORDER if n in self.fields]
        names += [n for n in self.fields if n not in FIELD_ORDER]
        parts: list[str | tuple[str, str]] = []
        for name in names:
            value = self.fields.get(name)
            if not value:
                continue
            if parts:
                parts.append(("  ·  ", "dim"))
            parts.extend([(f"{name} ", "dim"), safe_for_terminal(value)])
        return Content.assemble(*parts)

    def set_title(self, title: str) -> None:
        self.title = title or "New chat"
        if self.is_mounted:
            self.query_one("#header-title", Static).update(self._title_content())

    def set_field(self, name: str, value: str | None) -> None:
        """Show ``name value`` on the right (None hides the field)."""
        self.fields[name] = value
        if self.is_mounted:
            self.query_one("#header-fields", Static).update(self._fields_content())
