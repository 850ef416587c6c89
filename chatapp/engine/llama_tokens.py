"""Tokenizing a rendered chat for llama.cpp: special tokens only where the template wrote them.

llama.cpp parses special tokens anywhere in the text it is given, so a whole prompt tokenized at
once would turn ``<|im_end|>`` typed by a user into the real end of a turn. ``ChatTokenizer``
reads which tokens of the vocabulary are control tokens (llama.cpp's own attributes, after its
fixes for mislabelled vocabularies) and tokenizes a prompt rendered with marked message text
(see control_tokens.py) piece by piece: template text with special tokens parsed, marked text as
plain text, checked to hold no control token. A prompt whose messages hold no control-token
text is one piece and tokenizes exactly as before.
"""

from __future__ import annotations

from typing import Any

from chatapp.engine.control_tokens import ControlTokens


class ChatTokenizer:
    """Control tokens of one loaded vocabulary, and chat tokenization that respects them."""

    def __init__(self, llm: Any, bos_token: str | None) -> None:
        import llama_cpp

        self._llm = llm
        self._bos = bos_token or ""
        vocab = llm._model.vocab
        control_bit = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        added_bits = control_bit | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        self.control: dict[str, int] = {}
        """Control tokens: parsed only when special parsing is on."""
        self.user_defined: dict[str, int] = {}
        """Added tokens llama.cpp matches even in plain text (``<think>`` in Qwen3)."""
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
            attr = llama_cpp.llama_vocab_get_attr(vocab, token)
            if not attr & added_bits:
                continue
            text = llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")
            if text:
                (self.control if attr & control_bit else self.user_defined)[text] = token
        self._newline = self._tokens("\n", special=False)
        self._marked_ids: set[int | None] = set(self.control.values())

    @property
    def vocabulary(self) -> frozenset[str]:
        """Texts of every special and added token (to recognise a model's thinking markers)."""
        return frozenset(self.control) | frozenset(self.user_defined)

    def control_tokens(self, template_source: str) -> ControlTokens:
        """The texts kept out of messages: every control token, and the added tokens that the
        template itself writes (a Qwen3 user typing ``<tool_call>`` gets plain text)."""
        written = {t for t in self.user_defined if t in template_source}
        marked = ControlTokens(set(self.control) | written)
        self._marked_ids = {self.control.get(t, self.user_defined.get(t)) for t in marked.texts}
        return marked

    def single_token(self, text: str) -> int | None:
        """The id of ``text`` when the vocabulary has it as one token."""
        tokens = self._tokens(text, special=True)
        return tokens[0] if len(tokens) == 1 else None

    def tokenize_chat(self, marked: str, control: ControlTokens | None) -> list[int]:
        """Tokens of a prompt rendered with marked message text (BOS added unless the
        template wrote it)."""
        pieces = control.split(marked) if control else [(marked, False)]
        tokens: list[int] = []
        for index, (text, plain) in enumerate(pieces):
            if index == 0:
                add_bos = not (self._bos and text.startswith(self._bos))
                if plain:
                    tokens += self._tokens("", special=False, add_bos=add_bos)
                    tokens += self._plain(text)
                else:
                    tokens += self._tokens(text, special=True, add_bos=add_bos)
            elif plain:
                tokens += self._plain(text)
            else:
                tokens += self._inner(text, special=True)
        return tokens

    def _tokens(self, text: str, *, special: bool, add_bos: bool = False) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def _inner(self, text: str, *, special: bool) -> list[int]:
        """Tokens of text in the middle of a prompt. Tokenized after a newline that is then
        removed, so tokenizers that put a space before the start of a text do not add one."""
        tokens = self._tokens("\n" + text, special=special)
        n = len(self._newline)
        if n and tokens[:n] == self._newline:
            return tokens[n:]
        return self._tokens(text, special=special)

    def _plain(self, text: str) -> list[int]:
        """``text`` as plain text with no control token in it. llama.cpp still matches added
        tokens in plain text, so a marked one is tokenized in two parts."""
        tokens = self._inner(text, special=False)
        if not self._marked_ids.intersection(tokens):
            return tokens
        if len(text) == 1:
            return tokens
        return self._plain(text[:1]) + self._plain(text[1:])
