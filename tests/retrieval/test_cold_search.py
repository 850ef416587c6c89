"""A cold ``chatapp search`` reads what it needs without the indexing stack: query vectors from
numpy encoders, BM25 scores from the saved arrays, nearest chunks from the vectors' copy — and
finds exactly what the full path (sentence-transformers, USE's encoder, bm25s, chromadb) finds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chatapp.retrieval.store.keywords import LexicalIndex
from chatapp.retrieval.store.saved_bm25 import SavedBM25
from chatapp.retrieval.store.vector_copy import VectorCopy, copy_path, read_copy
from chatapp.retrieval.store.vectors import VectorStore, open_client

REPO = Path(__file__).resolve().parents[2]
KOREAN_PAGES = REPO / "benchmarks" / "retrieval_eval_ko" / "corpus"
ENGLISH_PAGES = REPO / "benchmarks" / "retrieval_eval" / "corpus" / "cmake-commands"
TEXTS = [
    "How do I include another directory that has its own CMakeLists.txt in my build?",
    "리스트를 렌더링할 때 배열 인덱스를 key로 쓰면 어떤 문제가 생기나요?",
    "def rotate_logs(path: str, keep: int = 5) -> None:  # 로그를 매일 밤 정리",
    "컴포넌트의 state는 렌더링 사이에 유지됩니다. " * 60,  # past MiniLM's 256 tokens
    "x",
    "",
]
QUERIES = [
    "How do I include another directory that has its own CMakeLists.txt in my build?",
    "Which keyword makes a custom command run after the target is linked?",
    "How do I link a library to a target?",
    "리스트를 렌더링할 때 배열 인덱스를 key로 쓰면 어떤 문제가 생기나요?",
    "이벤트 핸들러를 넘길 때 함수를 호출하지 말고 전달해야 하는 이유는?",
    "조건에 따라 다른 JSX를 반환하려면 어떻게 하나요?",
]
HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "chromadb",
    "bm25s",
    "scipy",
    "kiwipiepy",
)


# -- fast: the stores -----------------------------------------------------------------------


def test_saved_bm25_scores_equal_bm25s(tmp_path: Path) -> None:
    import bm25s

    texts = [
        "add_subdirectory adds a subdirectory to the build",
        "add_custom_command POST_BUILD runs after the target is linked",
        "target_link_libraries links a library to a target; the library links",
        "汉字 文字 检索",
        "nothing here",
    ]
    built = LexicalIndex.build([f"c{i}" for i in range(len(texts))], texts)
    built.save(tmp_path / "bm25", generation=3)
    saved = SavedBM25.load(tmp_path / "bm25")
    assert saved is not None
    reference = bm25s.BM25.load(str(tmp_path / "bm25"))
    for tokens in (["link", "librari"], ["target", "target", "link"], ["文字"], ["absent"]):
        assert np.array_equal(saved.get_scores(tokens), reference.get_scores(tokens))
    loaded = LexicalIndex.load(tmp_path / "bm25", 3)
    assert loaded is not None and isinstance(loaded._retriever, SavedBM25)
    assert loaded.top("link a library to the target", 3)[0][0] == "c2"
    assert LexicalIndex.load(tmp_path / "bm25", 4) is None  # another generation: rebuilt


def test_vector_copy_finds_what_chroma_finds(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((400, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"chunk-{i}" for i in range(len(vectors))]
    store = VectorStore(open_client(None, tmp_path / "chroma"), "copy-check")
    store.upsert(ids, vectors)
    copy = VectorCopy(ids, vectors, generation=1)
    for query in rng.standard_normal((5, 64)).astype(np.float32):
        query /= np.linalg.norm(query)
        expected = store.query(query, 30)
        got = copy.query(query, 30)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    wanted = ["chunk-3", "chunk-399", "absent"]
    stored = store.embeddings(wanted)
    assert copy.embeddings(wanted).keys() == stored.keys()
    assert np.allclose(copy.embeddings(["chunk-3"])["chunk-3"], stored["chunk-3"], atol=1e-6)
    assert copy.query(vectors[0], 1000)[0][0] == "chunk-0"  # more asked than held: all


# -- slow: real models and a real collection ---------------------------------------------


@pytest.fixture
def fp32_minilm(minilm) -> Iterator:
    """The full MiniLM in fp32 (the session's may run bf16 on this CPU), put back after."""
    precision = minilm.precision
    minilm.precision = "fp32"
    yield minilm
    minilm.precision = precision


@pytest.mark.slow
def test_query_vectors_equal_the_full_models(fp32_minilm) -> None:
    from chatapp.embedding.multilingual import UniversalSentenceEncoder
    from chatapp.embedding.query import embed_query

    light = np.stack([embed_query("bundled", t) for t in TEXTS])
    full = fp32_minilm.embed(TEXTS)
    assert np.min(np.sum(light * full, axis=1)) >= 0.9999
    use = UniversalSentenceEncoder()
    light = np.stack([embed_query("use-multilingual", t) for t in TEXTS])
    full = np.stack([use.embed([t])[0] for t in TEXTS])
    assert np.min(np.sum(light * full, axis=1)) >= 0.9999


@pytest.fixture
def small_collection(tmp_path: Path, chatapp_home: Path, fp32_minilm) -> str:
    """English CMake pages and Korean React pages in one ``auto`` collection (fp32 MiniLM)."""
    from chatapp.embedding.embedder import RoutedEmbedder, embedder_plan
    from chatapp.embedding.multilingual import UniversalSentenceEncoder
    from chatapp.retrieval.ingest.indexing import index_paths
    from chatapp.retrieval.store.collection import create_or_open

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("add_subdirectory.rst", "add_custom_command.rst", "target_link_libraries.rst"):
        shutil.copyfile(ENGLISH_PAGES / name, docs / name)
    for name in ("rendering-lists.md", "conditional-rendering.md"):
        shutil.copyfile(KOREAN_PAGES / name, docs / name)
    router = RoutedEmbedder(
        embedder_plan("auto"),
        {"bundled": fp32_minilm, "use-multilingual": UniversalSentenceEncoder()},
    )
    coll = create_or_open("small", embedder="auto", chunk_tokens=200, chunk_overlap=32)
    index_paths(coll, [docs], lambda: router)
    coll.close()
    return "small"


def _heavy_imports(query: str, home: Path) -> tuple[list[dict], list[str]]:
    """A search in a fresh process: its --json results and the heavy libraries it imported."""
    script = (
        "import sys\nfrom chatapp.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED', *[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "search", query, "-C", "small", "--json"],
        env=dict(os.environ, CHATAPP_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stderr.splitlines() if x.startswith("IMPORTED")][-1]
    return json.loads(done.stdout), line.split()[1:]


@pytest.mark.slow
@pytest.mark.parametrize("query", [QUERIES[0], QUERIES[3]], ids=["english", "korean"])
def test_cold_search_imports_no_torch_chromadb_or_bm25s(
    small_collection: str, chatapp_home: Path, fp32_minilm, query: str
) -> None:
    """A fresh ``chatapp search`` process (Kiwi in its child for the Korean question) finds
    what the full path finds, without importing the indexing stack."""
    from chatapp.embedding.embedder import RoutedEmbedder, embedder_plan
    from chatapp.embedding.multilingual import UniversalSentenceEncoder
    from chatapp.retrieval.search.hybrid import Searcher
    from chatapp.retrieval.store.collection import open_collection

    hits, heavy = _heavy_imports(query, chatapp_home)
    assert heavy == []
    full = RoutedEmbedder(
        embedder_plan("auto"),
        {"bundled": fp32_minilm, "use-multilingual": UniversalSentenceEncoder()},
    )
    with open_collection(small_collection) as coll:  # what the full path finds, in process
        expected = Searcher(coll, full).search(query, 5, calibrated=True)
    assert [(h["path"], h["start_line"]) for h in hits] == [
        (h.path, h.start_line) for h in expected
    ]
    assert np.allclose([h["score"] for h in hits], [h.score for h in expected], atol=1e-3)


@pytest.mark.slow
def test_results_equal_the_full_path(small_collection: str, fp32_minilm) -> None:
    from chatapp.embedding.embedder import RoutedEmbedder, embedder_plan
    from chatapp.embedding.multilingual import UniversalSentenceEncoder
    from chatapp.retrieval.search.hybrid import Searcher
    from chatapp.retrieval.store.collection import open_collection

    full = RoutedEmbedder(
        embedder_plan("auto"),
        {"bundled": fp32_minilm, "use-multilingual": UniversalSentenceEncoder()},
    )
    with open_collection(small_collection) as coll:
        for space in coll.space_counts():  # the copy the search read is the store's vectors
            assert read_copy(coll, space, coll.manifest.generation) is not None
            assert copy_path(coll, space).exists()
            vector = full.get(space).embed([QUERIES[0]])[0]
            copy_hits = coll.search_vectors(space).query(vector, 30)
            store_hits = coll.store_for(space).query(vector, 30)
            assert [i for i, _ in copy_hits] == [i for i, _ in store_hits]
        cold, warm = Searcher(coll), Searcher(coll, full)
        for query in QUERIES:
            got = cold.search(query, 5, calibrated=True)
            expected = warm.search(query, 5, calibrated=True)
            assert [h.chunk_id for h in got] == [h.chunk_id for h in expected], query
            assert np.allclose([h.score for h in got], [h.score for h in expected], atol=1e-4)
            assert np.allclose(
                [h.similarity for h in got], [h.similarity for h in expected], atol=1e-4
            )
