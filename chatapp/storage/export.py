"""Export a conversation as Markdown (for reading and sharing) or JSON (everything, all branches)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatapp.errors import UsageError
from chatapp.paths import write_private_text
from chatapp.storage.conversations import ConversationStore, Message

_ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


def _model_name(message: Message) -> str:
    return str((message.model or {}).get("name") or "")


def export_markdown(store: ConversationStore, conversation_id: int) -> str:
    """The active branch as Markdown: a heading per turn, sources listed under replies."""
    conversation = store.get_conversation(conversation_id)
    lines = [f"# {conversation.title or f'Conversation {conversation.id}'}", ""]
    lines.append(f"_Conversation {conversation.id} · started {conversation.created_at[:19]}Z_")
    lines.append("")
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt, ""]
    for message in store.thread(conversation_id):
        title = _ROLE_TITLES.get(message.role, message.role)
        extras = [
            x
            for x in (
                _model_name(message) if message.role == "assistant" else "",
                f"template {message.template}" if message.template else "",
                message.status if message.status != "complete" else "",
            )
            if x
        ]
        if message.role == "tool":
            turn = message.turn or {}
            title = f"Tool {turn.get('name', '?')}"
            extras = [str(turn.get("status", message.status)), f"{turn.get('duration_s', 0)} s"]
        lines.append(f"## {title}" + (f" ({', '.join(extras)})" if extras else ""))
        lines.append("")
        for call in message.tool_calls or []:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            lines.append(f"- calls `{call.name}` with `{arguments}`")
        if message.tool_calls:
            lines.append("")
        if message.role == "tool":
            lines += ["```text", message.content, "```", ""]
        elif message.content or not message.tool_calls:
            lines += [message.content, ""]
        for source in message.sources or []:
            lines.append(f"- [{source.n if source.n is not None else '?'}] {source.location}")
        if message.sources:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def conversation_as_dict(store: ConversationStore, conversation_id: int) -> dict[str, Any]:
    conversation = store.get_conversation(conversation_id)
    active = {m.id for m in store.thread(conversation_id)}
    messages = []
    for message in store.messages(conversation_id):
        data = message.to_dict()
        data["on_active_branch"] = message.id in active
        messages.append(data)
    return {"conversation": dict(conversation.__dict__), "messages": messages}


def export_json(store: ConversationStore, conversation_id: int) -> str:
    """Every message of every branch, with model, settings, sources and stats."""
    return json.dumps(conversation_as_dict(store, conversation_id), ensure_ascii=False, indent=2)


def write_export(text: str, path: Path) -> Path:
    """Write an export to ``path`` atomically, readable by its owner only (0600): it holds a
    private conversation. UsageError naming the path when it cannot be written."""
    if path.is_dir():
        raise UsageError(f"--output {path}: is a directory")
    try:
        return write_private_text(path, text)
    except OSError as exc:
        raise UsageError(f"--output {path}: cannot be written ({exc.strerror or exc})") from None
