"""Control tokens belong to the chat template, never to the text in it.

A chat template writes turn markers such as ``<|im_start|>`` and ``<|im_end|>``; the same
characters typed by a user, put in a template variable or found in an indexed document must
reach the model as plain text, or ``<|im_end|>\\n<|im_start|>system`` inside a message would end
the user's turn and open a forged system turn. So before a chat is rendered, every control-token
text inside the messages is wrapped in two private-use characters; after rendering, the prompt is
split at those marks: template text is tokenized with special tokens parsed, marked text as
plain text. Characters from the marks' plane that the messages already hold are removed first,
so they cannot be used to forge a mark. Pure Python; the tokenizer is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MARK_OPEN = "\U000f0000"
MARK_CLOSE = "\U000f0001"
_MARKS_RE = re.compile(f"[{MARK_OPEN}{MARK_CLOSE}]")
# Message fields that carry text from users, documents or earlier replies.
TEXT_FIELDS = ("content", "reasoning_content", "thinking")


class ControlTokens:
    """The control-token texts of one vocabulary, and how to keep them out of message text."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = frozenset(t for t in texts if t)
        # Longest first, so a token wins over the shorter tokens inside it.
        ordered = sorted(self.texts, key=len, reverse=True)
        self._token_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # A marked token, or a lone mark (a template's string method can cut a pair apart).
        inner = self._token_re.pattern if self._token_re else "(?!)"
        self._split_re = re.compile(f"{MARK_OPEN}({inner}){MARK_CLOSE}|[{MARK_OPEN}{MARK_CLOSE}]")

    def __bool__(self) -> bool:
        return bool(self.texts)

    def mark(self, text: str) -> str:
        """``text`` with each control-token text in it wrapped in marks."""
        text = _MARKS_RE.sub("", text)
        if self._token_re is None:
            return text
        return self._token_re.sub(lambda m: f"{MARK_OPEN}{m.group(0)}{MARK_CLOSE}", text)

    def mark_message(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A message dict with its text fields marked, a call's arguments included."""
        out = dict(item)
        for key in TEXT_FIELDS:
            value = out.get(key)
            if isinstance(value, str):
                out[key] = self.mark(value)
        if out.get("tool_calls"):
            out["tool_calls"] = self.mark_value(out["tool_calls"])
        return out

    def mark_value(self, value: Any) -> Any:
        """Every string in a JSON-like value marked, keys too (tool specs, call arguments)."""
        return map_strings(value, self.mark)

    def split(self, rendered: str) -> list[tuple[str, bool]]:
        """The rendered prompt as (text, plain) pieces: ``plain`` pieces are control-token texts
        from the messages (tokenize them as text); the others are tokenized with special tokens.
        Lone marks are dropped but still separate the text on either side."""
        parts = self._split_re.split(rendered)
        pieces: list[tuple[str, bool]] = []
        for index, part in enumerate(parts):
            if part:  # None for a lone mark, "" between adjacent marks
                pieces.append((part, index % 2 == 1))
        return pieces


def unmark(rendered: str) -> str:
    """The prompt text exactly as the model reads it: marks removed."""
    return _MARKS_RE.sub("", rendered)


# A server (llama.cpp server, vLLM, Ollama) renders and tokenizes the chat itself, with special
# tokens parsed in the message text, and its vocabulary is not known here. These are the shapes
# control tokens take in current chat formats: ChatML/Llama 3/Phi/gpt-oss ``<|…|>``, DeepSeek's
# full-width ``<｜…｜>``, Gemma's turn markers, Mistral's [INST], and </s>.
_SERVER_CONTROL_RE = re.compile(
    r"<\|[^\s<>|]{1,48}\|>|<｜[^\s<>｜]{1,48}｜>|</?(?:start_of_turn|end_of_turn|s)>|\[/?INST\]"
)
WORD_JOINER = "\u2060"


def defuse(text: str) -> str:
    """``text`` for a server that parses special tokens in it: each control-token-shaped piece
    gets an invisible word joiner after its first character, so it reaches the model as text
    (``<|im_end|>`` → ``<\u2060|im_end|>``), which reads the same to a person."""
    return _SERVER_CONTROL_RE.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)


def defuse_message(item: Mapping[str, Any]) -> dict[str, Any]:
    """A message dict with its text fields defused (see ``defuse``), a call's arguments too."""
    out = dict(item)
    for key in TEXT_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = defuse(value)
    if out.get("tool_calls"):
        out["tool_calls"] = map_strings(out["tool_calls"], defuse)
    return out


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (dicts, lists, strings, numbers) with ``change`` applied to every string."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {change(str(k)): map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, change) for v in value]
    return value
