"""Which embedding space a chunk goes to and how its size is counted, without the models.

A collection embeds each language in a *space* (its embedder): ``SpacePlan`` holds the
language → space plan and the routing rules; ``RoutedEmbedder`` (embedder.py) adds the loaded
models, ``ChunkRouter`` only each space's tokenizer. A ``ChunkRouter`` pickles to a few
hundred KB (tokenizers, no weights), so the indexer's reader process (reader_process.py)
sizes and routes chunks exactly as the calling process would, without loading an embedder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatapp.text.language import ENGLISH, detect_language

TokenCounter = Callable[[str], int]
"""Tokens of a text as its embedder counts them (without special tokens)."""
InputMaker = Callable[[list[str]], list[Any]]
"""An embedder's own input for each text (its tokens), made where the texts are read so the
embedding thread only runs the model (``embed_inputs``)."""


def text_language(text: str) -> str:
    # ASCII text is Latin script (English) without counting its letters one by one.
    return ENGLISH if text.isascii() else detect_language(text)


class SpacePlan:
    """Language → embedding space, and the rules that pick a text's space."""

    def __init__(self, plan: dict[str, str], fallback: str) -> None:
        self.plan = dict(plan)
        self._fallback = fallback

    @property
    def spaces(self) -> list[str]:
        return list(dict.fromkeys(self.plan.values()))

    def space_for_language(self, language: str) -> str:
        return self.plan.get(language, self.plan.get("*", self._fallback))

    def space_for(self, text: str) -> str:
        if len(self.plan) == 1:
            return next(iter(self.plan.values()))
        return self.space_for_language(text_language(text))

    def space_for_chunk(self, text: str, document_language: str) -> str:
        """The space of a chunk of a document: its own language decides, except that
        Latin-script chunks of a non-English document (the code blocks of a Korean page) stay
        with their document — the multilingual embedder reads them as well, several times
        faster than MiniLM embeds code, and a Korean question about them is scored there."""
        if len(self.plan) == 1:
            return next(iter(self.plan.values()))
        language = text_language(text)
        if language == ENGLISH and document_language != ENGLISH:
            language = document_language
        return self.space_for_language(language)

    def input_maker(self, space: str) -> InputMaker | None:
        """What makes the space's embedder input ahead of ``embed_inputs`` (None: it has none)."""
        return None

    def counter(self, space: str) -> TokenCounter:
        """The token counter of a space's embedder."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        """Tokens of a text in the space of its own language."""
        return self.counter(self.space_for(text))(text)

    def chunk_counter(self, document_language: str) -> TokenCounter:
        """Token counts for the chunks of a document in ``document_language``: each text
        counted by the embedder that will embed it (``space_for_chunk``), so the code blocks
        of a Korean page are sized in the multilingual embedder's pieces."""
        if len(self.plan) == 1:
            return self.counter(next(iter(self.plan.values())))
        return lambda text: self.counter(self.space_for_chunk(text, document_language))(text)


class ChunkRouter(SpacePlan):
    """A ``SpacePlan`` with each space's token counter and input maker: what the indexer's
    reader needs."""

    def __init__(
        self,
        plan: dict[str, str],
        fallback: str,
        counters: dict[str, TokenCounter],
        inputs: dict[str, InputMaker] | None = None,
    ) -> None:
        super().__init__(plan, fallback)
        self.counters = dict(counters)
        self.inputs = dict(inputs or {})

    def counter(self, space: str) -> TokenCounter:
        return self.counters[space]

    def input_maker(self, space: str) -> InputMaker | None:
        return self.inputs.get(space)


class TokenizerCounter:
    """Counts tokens with a Hugging Face fast tokenizer (its JSON, without padding or
    truncation); pickles as the JSON and rebuilds the tokenizer on first use."""

    def __init__(self, tokenizer_json: str) -> None:
        self._json = tokenizer_json
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, str]:
        return {"json": self._json}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["json"])  # type: ignore[misc]

    def __call__(self, text: str) -> int:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(self._json)
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._tokenizer = tokenizer
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
