"""The grounded user turn: sources numbered by rank, the best listed last, nearest the question."""

from __future__ import annotations

import re

from chatapp.domain import Source
from chatapp.prompting.grounded import REMINDER, grounded_text


def source(n: int) -> Source:
    return Source(f"text of source {n}", f"/docs/doc{n}.md", f"doc{n}.md", start_line=n, end_line=n)


def test_sources_keep_their_rank_numbers_and_the_best_comes_last() -> None:
    text = grounded_text("Which one?", [source(1), source(2), source(3)], "en")
    numbers = [int(n) for n in re.findall(r'<source n="(\d+)"', text)]
    assert numbers == [3, 2, 1]
    # Each number still names its own source, so the citation check reads the same [n].
    assert re.search(
        r'<source n="1" path="doc1.md" lines="1-1">\ntext of source 1\n</source>', text
    )
    best_end = text.index("text of source 1") + len("text of source 1\n</source>")
    assert text[best_end:].strip() == f"Question: Which one?\n\n{REMINDER}"


def test_a_single_source_is_numbered_one() -> None:
    text = grounded_text("질문이 뭔가요?", [source(1)])
    assert text.startswith('<source n="1"') and "질문: 질문이 뭔가요?" in text
