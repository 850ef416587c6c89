"""The sources panel under a grounded reply: each source as ``[n] file:lines · score`` with a
preview of the chunk, marked when the reply cites it; then the citation check (numbers that name
no source, sentences their sources do not support), as the session stored it with the reply
(replies stored before that are checked off the UI thread with the collection's embedder, the
one the chat's document retriever keeps loaded between turns).

Styles live in DEFAULT_CSS: the panel is a self-contained plug-in of the documents extension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from chatapp.domain import Source
from chatapp.terminal_text import safe_for_terminal

PREVIEW_CHARS = 160


def source_location(source: Source) -> str:
    """``file:12-30`` / ``file p.3:4-9``: where a source chunk is."""
    return source.location


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    # Document text can hold ESC sequences (HTML's &#27;), which must not reach the terminal.
    flat = safe_for_terminal(" ".join(str(text).split()))
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass
class StoredCheck:
    """The citation check as stored with the reply (the session ran it when the reply ended)."""

    citations: list[int] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    checked_sentences: int = 0

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> StoredCheck:
        return cls(
            list(data.get("citations") or []),
            list(data.get("invalid_citations") or []),
            list(data.get("unsupported") or []),
            int(data.get("checked_sentences") or 0),
        )

    @classmethod
    def from_report(cls, report: Any) -> StoredCheck:
        return cls(
            report.citations, report.invalid_citations, report.unsupported, len(report.sentences)
        )


class SourcesPanel(Vertical):
    """Sources of one stored assistant message, with its citations checked."""

    DEFAULT_CSS = """
    SourcesPanel {
        height: auto;
        margin-top: 1;
        padding: 0 1;
        border-left: tall $accent 40%;
    }
    SourcesPanel .sources-title { color: $text-muted; text-style: bold; }
    SourcesPanel .source-line { height: auto; }
    SourcesPanel .source-preview { color: $text-muted; height: auto; padding-left: 4; }
    SourcesPanel .citation-check { height: auto; color: $text-muted; }
    SourcesPanel .citation-check.-warn { color: $warning; }
    """

    def __init__(self, message: Any, *, check: bool = True) -> None:
        super().__init__(classes="sources-panel")
        self.message = message
        self.sources: list[Source] = [s for s in (message.sources or []) if isinstance(s, Source)]
        self.answer: str = message.content or ""
        self._check = check
        self.report: Any = None

    def compose(self) -> ComposeResult:
        collection = self._collection()
        title = safe_for_terminal(f"Sources · {collection}" if collection else "Sources")
        yield Static(title, classes="sources-title", markup=False)
        for number, source in enumerate(self.sources, start=1):
            n = source.n if source.n is not None else number
            yield Static(self._line(n, source, cited=None), classes="source-line", id=f"src-{n}")
            if source.text:
                yield Static(preview(source.text), classes="source-preview", markup=False)
        yield Static("", classes="citation-check", id="citation-check")

    def _collection(self) -> str:
        return next((s.collection for s in self.sources if s.collection), "")

    def _line(self, n: int, source: Source, cited: bool | None) -> Content:
        where = safe_for_terminal(source_location(source))
        parts: list[tuple[str, str] | str] = [(f"[{n}]", "bold"), f" {where}"]
        parts.append((f" · score {source.score:.2f}", "dim"))
        if cited is True:
            parts.append((" · cited", "$success"))
        elif cited is False:
            parts.append((" · not cited", "dim"))
        return Content.assemble(*parts)

    def on_mount(self) -> None:
        stored = (getattr(self.message, "turn", None) or {}).get("citations")
        if stored is not None:
            self.show_report(StoredCheck.from_record(stored))
        elif self._check and self.sources and self.answer.strip():
            self.run_check()  # replies stored before checks were kept with them

    @work(thread=True, exclusive=True, group="citation-check")
    def run_check(self) -> None:
        """Check the reply's citations with the collection's embedder, through the chat's
        document retriever (which loads it once and keeps it for the next turns)."""
        from chatapp.retrieval.search.citations import check_answer
        from chatapp.ui.chat_context import ChatContext

        context = getattr(self.app, "context", None)
        retriever = context.retriever if isinstance(context, ChatContext) else None
        collection = self._collection()
        if retriever is None or not collection:
            return
        try:
            embedder = retriever.embedder(collection)
            report = check_answer(self.answer, self.sources, embedder)
        except Exception as exc:  # a missing model must not break the chat view
            self.app.call_from_thread(self.show_check_failed, str(exc))
            return
        self.app.call_from_thread(self.show_report, StoredCheck.from_report(report))

    def show_report(self, report: StoredCheck) -> None:
        """Mark cited sources; list invalid citations and unsupported sentences."""
        self.report = report
        for number, source in enumerate(self.sources, start=1):
            n = source.n if source.n is not None else number
            self.query_one(f"#src-{n}", Static).update(
                self._line(n, source, cited=n in report.citations)
            )
        lines: list[str] = []
        if report.invalid_citations:
            cited = ", ".join(f"[{n}]" for n in report.invalid_citations)
            lines.append(f"⚠ cites sources that were not given: {cited}")
        for item in report.unsupported:
            why = item.get("reason") or f"support {item['support']:.2f}"
            lines.append(f"⚠ unsupported ({why}): {preview(item['text'], 120)}")
        if not lines:
            checked = report.checked_sentences
            lines.append(f"✓ {checked} sentence(s) supported by their sources" if checked else "")
        check = self.query_one("#citation-check", Static)
        check.set_class(bool(report.invalid_citations or report.unsupported), "-warn")
        check.update(Content("\n".join(line for line in lines if line)))

    def show_check_failed(self, problem: str) -> None:
        check = self.query_one("#citation-check", Static)
        check.update(Content(f"citations not checked: {preview(problem, 100)}"))


def sources_panel(message: Any) -> SourcesPanel | None:
    """The documents extension's sources renderer."""
    if not message.sources:
        return None
    return SourcesPanel(message)
