"""``chatapp ask --collection NAME``: one turn answered from a document collection.

The question is stored as the user message; the model sees it wrapped with numbered sources
(chatapp.retrieval.grounding); the sources are stored with the assistant message. When no chunk
is relevant enough, the model is not asked: the stored reply says the documents don't contain
the answer. After the reply, citations are checked and unsupported sentences reported.
"""

from __future__ import annotations

import sys
from typing import Any

from chatapp.domain import ChatMessage

HISTORY_SHARE = 4
"""Earlier turns may keep at most 1/HISTORY_SHARE of the context; sources get the rest."""


def _history_tokens(session: Any) -> int:
    history = [
        ChatMessage(m.role, m.content)
        for m in session.thread()
        if m.role in ("user", "assistant") and m.content
    ]
    if not history:
        return 0
    backend = session.backend
    return min(backend.count_chat_tokens(history), backend.n_ctx // HISTORY_SHARE)


def _store_refusal(session: Any, text: str, refusal: str, collection: str) -> Any:
    from chatapp.session import title_from

    store = session.store
    if session.conversation_id is None:
        conversation = store.create_conversation(
            title_from(text),
            system_prompt=session.system_prompt,
            model=session.backend.identity.name,
            collection=collection,
        )
        session.conversation_id = conversation.id
    user = store.add_message(session.conversation_id, "user", text)
    return store.add_message(
        session.conversation_id,
        "assistant",
        refusal,
        parent_id=user.id,
        model=session.backend.identity.to_dict(),
        sources=[],
    )


def check_collection(collection: str, settings: Any) -> None:
    """Raise the usual one-line error for a bad or unknown collection name."""
    from chatapp.retrieval.collection import check_name, open_collection, resolve_url

    open_collection(check_name(collection), resolve_url(settings)).close()


def run_grounded_turn(
    session: Any,
    text: str,
    collection: str,
    settings: Any,
    *,
    stream_to_stdout: bool,
) -> dict[str, Any]:
    """Answer from the collection and return the ``ask --json`` object with ``sources``,
    ``grounded``, ``citations``, ``invalid_citations`` and ``unsupported`` added."""
    from chatapp.cli.chat import run_turn
    from chatapp.retrieval.collection import check_name, open_collection, resolve_url
    from chatapp.retrieval.grounding import check_answer, prepare_grounded_turn
    from chatapp.retrieval.search import Searcher
    from chatapp.session import TurnOptions

    with open_collection(check_name(collection), resolve_url(settings)) as coll:
        searcher = Searcher(coll)
        turn = prepare_grounded_turn(
            text,
            coll,
            settings,
            session.backend,
            searcher=searcher,
            system_prompt=session.system_prompt,
            history_tokens=_history_tokens(session),
        )
        embedder = searcher.embedder
    if not turn.grounded:
        assert turn.refusal is not None
        message = _store_refusal(session, text, turn.refusal, coll.name)
        if stream_to_stdout:
            print(turn.refusal)
        return {
            "text": turn.refusal,
            "conversation_id": message.conversation_id,
            "message_id": message.id,
            "model": session.backend.identity.name,
            "finish_reason": "no_sources",
            "stats": {},
            "sources": [],
            "grounded": False,
            "citations": [],
            "invalid_citations": [],
            "unsupported": [],
        }
    options = TurnOptions(model_text=turn.model_text, sources=turn.sources)
    result = run_turn(session, text, stream_to_stdout=stream_to_stdout, options=options)
    report = check_answer(result["text"], turn.sources, embedder)
    result.update(
        sources=turn.sources,
        grounded=True,
        citations=report.citations,
        invalid_citations=report.invalid_citations,
        unsupported=report.unsupported,
    )
    if stream_to_stdout:
        _print_sources(turn.sources, report)
    return result


def _print_sources(sources: list[dict[str, Any]], report: Any) -> None:
    out = sys.stderr
    print("\nsources:", file=out)
    for source in sources:
        where = source["display_path"]
        if source.get("page") is not None:
            where += f" p.{source['page']}"
        if source.get("start_line") is not None:
            where += f":{source['start_line']}-{source['end_line']}"
        mark = "*" if source["n"] in report.citations else " "
        print(f" {mark}[{source['n']}] {where}  (score {source['score']:.2f})", file=out)
    if report.invalid_citations:
        cited = ", ".join(f"[{n}]" for n in report.invalid_citations)
        print(f"warning: cited sources that were not given: {cited}", file=out)
    for item in report.unsupported:
        why = item.get("reason") or f"support {item['support']:.2f}"
        print(f"unsupported ({why}): {item['text']}", file=out)
