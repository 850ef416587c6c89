"""Chunking follows structure: sizes in embedder tokens, headings start chunks, overlap between
split paragraphs, pages never mixed, line ranges that point at the right text."""

from __future__ import annotations

from itertools import pairwise

from chatapp.embedding.embedder import HashingEmbedder
from chatapp.retrieval.ingest.chunking import chunk_blocks
from chatapp.retrieval.ingest.markup import Block, parse_markdown

count = HashingEmbedder().count_tokens


def sentence(i: int) -> str:
    return f"Sentence number {i} talks about topic{i} in five words."


def test_every_chunk_fits_the_token_budget_and_keeps_all_text() -> None:
    text = "# Title\n\n" + " ".join(sentence(i) for i in range(60)) + "\n"
    chunks = chunk_blocks(parse_markdown(text), count, max_tokens=40, overlap=10)
    assert len(chunks) > 5
    assert all(count(c.text) <= 40 for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert all(f"topic{i} " in joined for i in range(60))
    assert all(c.heading == ("Title",) for c in chunks)


def test_split_paragraph_chunks_overlap() -> None:
    text = " ".join(sentence(i) for i in range(30))
    chunks = chunk_blocks([Block(text, 1, 1)], count, max_tokens=40, overlap=12)
    for first, second in pairwise(chunks):
        last_sentence = first.text.split(". ")[-1].rstrip(".")
        assert last_sentence in second.text  # the boundary sentence appears on both sides
    no_overlap = chunk_blocks([Block(text, 1, 1)], count, max_tokens=40, overlap=0)
    assert sum(c.tokens for c in no_overlap) == count(text)


def test_headings_start_new_chunks_once_the_current_one_is_half_full() -> None:
    body = " ".join(sentence(i) for i in range(3))  # ~27 tokens
    text = f"# A\n\n{body}\n\n## B\n\n{body}\n\n## C\n\nshort\n\n## D\n\nshort too\n"
    chunks = chunk_blocks(parse_markdown(text), count, max_tokens=40, overlap=0)
    headings = [c.heading for c in chunks]
    assert headings[0] == ("A",)
    assert headings[1] == ("A", "B")
    assert chunks[1].text.startswith("## B")  # the heading line travels with its section
    assert "## D" in chunks[-1].text and "## C" in chunks[-1].text  # small sections packed


def test_code_blocks_split_by_lines_not_words() -> None:
    code = "\n".join(f"call_function_{i}(argument_{i})" for i in range(40))
    block = Block(f"```\n{code}\n```", 10, 51, "code")
    chunks = chunk_blocks([block], count, max_tokens=30, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            assert line.startswith(("call_function_", "```"))
    assert chunks[0].start_line == 10 and chunks[-1].end_line == 51


def test_line_ranges_point_at_the_text() -> None:
    lines = [f"Line {i} has the word marker{i}." for i in range(1, 41)]
    text = "\n".join(lines)
    chunks = chunk_blocks(parse_markdown(text), count, max_tokens=30, overlap=0)
    for chunk in chunks:
        first = lines[chunk.start_line - 1]
        last = lines[chunk.end_line - 1]
        assert first in chunk.text and last in chunk.text


def test_chunks_never_span_pages() -> None:
    blocks = [Block("Page one text.", 1, 1, page=1), Block("Page two text.", 1, 1, page=2)]
    chunks = chunk_blocks(blocks, count, max_tokens=200)
    assert [(c.page, c.text) for c in chunks] == [(1, "Page one text."), (2, "Page two text.")]


def test_one_giant_line_is_cut_at_whitespace() -> None:
    blob = " ".join(f"w{i}" for i in range(2000))
    chunks = chunk_blocks([Block(blob, 1, 1, "table")], count, max_tokens=100, overlap=0)
    assert all(c.tokens <= 100 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == blob.split()


def test_heading_only_documents_give_no_chunks() -> None:
    assert chunk_blocks(parse_markdown("# Just a title\n"), count) == []
