"""Tools in the prompt of an in-process model: what the chat template is given.

A template that reads ``tools`` (Qwen, Llama 3.x, Mistral, Granite, LFM2, SmolLM3, gpt-oss…)
gets the offered tools as OpenAI ``tools`` entries and the history's calls and results as
``tool_calls`` / ``tool`` messages, the shape transformers gives it. A template that describes
no tools (SmolLM2, Gemma 2/3, Phi-3.5, EXAONE 3.5) gets the Hermes convention instead: the
tools and how to call them at the end of the system prompt, earlier calls written as
``<tool_call>`` text in the assistant's turn, and results as a user turn of ``<tool_response>``
blocks (these templates know no ``tool`` role). Tool descriptions, arguments and results are
message text, so control tokens in them are marked as plain text like any other message text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatapp.domain import ChatMessage, ToolSpec
from chatapp.engine.tool_call_syntax import CallSyntax, render_call

_CONVENTION = (
    "You can call tools. The tools are described in JSON Schema inside <tools></tools>:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "To call a tool, reply with its name and arguments as a JSON object inside "
    "<tool_call></tool_call>:\n"
    '<tool_call>\n{{"name": "TOOL_NAME", "arguments": {{"ARGUMENT": "VALUE"}}}}\n</tool_call>\n'
    "Results come back inside <tool_response></tool_response>. {choice}"
)
_CHOICE = {
    "auto": "Call a tool only when it helps; otherwise answer directly.",
    "required": "Answer with a tool call.",
}


@dataclass(frozen=True)
class ToolChat:
    """What to render: the messages and the ``tools`` variable (None: none offered)."""

    messages: list[ChatMessage]
    tools: list[dict[str, Any]] | None


def offered(specs: Sequence[ToolSpec], choice: str) -> list[ToolSpec]:
    """The specs a reply offers under ``tool_choice``: none for "none", one for a name."""
    if choice == "none":
        return []
    if choice not in ("auto", "required"):
        return [s for s in specs if s.name == choice]
    return list(specs)


def tool_chat(
    messages: Sequence[ChatMessage],
    specs: Sequence[ToolSpec],
    choice: str,
    syntax: CallSyntax | None,
) -> ToolChat:
    """The chat and ``tools`` for a template with ``syntax`` (see the module docstring)."""
    tools = offered(specs, choice)
    if syntax is None or syntax.native:
        entries = [spec.to_openai() for spec in tools] or None
        return ToolChat(list(messages), entries)
    return ToolChat(_conventional(messages, tools, choice, syntax), None)


def _conventional(
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    choice: str,
    syntax: CallSyntax,
) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for message in messages:
        if message.tool_calls:
            calls = render_call(syntax, message.tool_calls)
            content = f"{message.content}\n{calls}" if message.content.strip() else calls
            out.append(ChatMessage("assistant", content, message.reasoning))
        elif message.role == "tool":
            block = f"<tool_response>\n{message.content}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.startswith("<tool_response>"):
                out[-1] = ChatMessage("user", f"{out[-1].content}\n{block}")
            else:
                out.append(ChatMessage("user", block))
        else:
            out.append(message)
    if not tools:
        return out
    listing = "\n".join(json.dumps(s.to_openai(), ensure_ascii=False) for s in tools)
    hint = _CHOICE.get(choice, f"Answer with a call to {choice}.")
    text = _CONVENTION.format(tools=listing, choice=hint)
    if out and out[0].role == "system":
        first = out[0]
        out[0] = ChatMessage("system", f"{first.content}\n\n{text}", first.reasoning)
    else:
        out.insert(0, ChatMessage("system", text))
    return out
