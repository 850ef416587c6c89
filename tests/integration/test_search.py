"""``chatapp index`` / ``search`` / ``collections`` through the real CLI entry point, with real
chromadb in tmp dirs; the hashing embedder for speed, the bundled MiniLM for relevance."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chatapp.embedding.embedder import StaticEmbedder
from tests.support.documents import CORPUS, run_cli, write_corpus

RESULT_KEYS = {"rank", "score", "decided_by", "similarity", "threshold", "language", "space", "path",
               "start_line", "end_line", "page", "heading", "text"}  # fmt: skip


@pytest.fixture
def hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATAPP_RETRIEVAL__EMBEDDER", "hashing")


@pytest.fixture
def indexed(tmp_path: Path, hashing: None, capsys: pytest.CaptureFixture[str]) -> Path:
    corpus = write_corpus(tmp_path / "docs", CORPUS)
    code, out, err = run_cli(["index", str(corpus), "--collection", "home", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert len(summary["indexed"]) == 4
    return corpus


def test_search_json_shape_and_ranking(indexed: Path, capsys) -> None:
    code, out, _ = run_cli(["search", "pruning roses in winter", "-C", "home", "--json"], capsys)
    assert code == 0
    results = json.loads(out)
    assert results and set(results[0]) == RESULT_KEYS
    assert results[0]["path"] == str(indexed / "garden/roses.md")
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    assert results[0]["heading"] == "Roses" and results[0]["start_line"] == 1
    assert results[0]["page"] is None


def test_search_text_output_names_file_and_lines(indexed: Path, capsys) -> None:
    code, out, _ = run_cli(["search", "sourdough", "starter", "-C", "home", "-k", "1"], capsys)
    assert code == 0
    assert "kitchen/bread.txt:1-" in out and "Sourdough bread" in out


def test_search_batch_one_line_per_query(indexed: Path, tmp_path: Path, capsys) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_text("watering tomatoes\n\nTCP port socket\n", encoding="utf-8")
    code, out, _ = run_cli(["search", "--batch", str(queries), "-C", "home", "-k", "2"], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["query"] for line in lines] == ["watering tomatoes", "TCP port socket"]
    assert lines[0]["results"][0]["path"].endswith("tomatoes.md")
    assert lines[1]["results"][0]["path"].endswith("server.py")
    assert all(len(line["results"]) <= 2 for line in lines)


def test_threshold_leaves_out_irrelevant_chunks(indexed: Path, capsys) -> None:
    code, out, _ = run_cli(
        ["search", "quantum chromodynamics lattice", "-C", "home", "--json", "--min-score", "0.5"],
        capsys,
    )
    assert code == 0 and json.loads(out) == []
    code, out, _ = run_cli(["search", "quantum chromodynamics", "-C", "home", "--min-score", "0.5"],
                           capsys)  # fmt: skip
    assert "relevant enough" in out


def test_collections_list_info_rm(indexed: Path, capsys) -> None:
    code, out, _ = run_cli(["collections", "list", "--json"], capsys)
    assert code == 0
    [info] = json.loads(out)
    assert (info["name"], info["files"], info["embedder"]) == ("home", 4, "hashing")
    code, out, _ = run_cli(["collections", "info", "home", "--json"], capsys)
    data = json.loads(out)
    assert data["chunks"] == info["chunks"] and len(data["file_list"]) == 4
    code, out, _ = run_cli(["collections", "rm", "home"], capsys)
    assert code == 0 and "removed collection 'home'" in out
    code, out, err = run_cli(["search", "roses", "-C", "home"], capsys)
    assert (
        code == 2
        and err.strip() == "error: collection home: not found (none yet: chatapp index PATH)"
    )


def test_reindex_without_paths_uses_recorded_roots(indexed: Path, capsys) -> None:
    (indexed / "garden/new.md").write_text("# New\n\nFresh basil.\n", encoding="utf-8")
    code, out, _ = run_cli(["index", "-C", "home", "--json"], capsys)
    summary = json.loads(out)
    assert code == 0 and summary["indexed"] == [str(indexed / "garden/new.md")]
    assert summary["unchanged"] == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "-C", "nope"], "error: collection nope: not found"),
        (["collections", "info", "nope"], "error: collection nope: not found"),
        (["collections", "rm", "nope"], "error: collection nope: not found"),
        (["search", "x", "-C", "bad name"], "error: collection name 'bad name': use 1-64"),
        (["search", "   ", "-C", "home"], "error: empty query: give words to search for"),
        (["search", "--batch", "/no/such/file", "-C", "home"], "error: batch file /no/such/file:"),
        (["search", "x", "--mode", "magic", "-C", "home"], "error: --mode magic: use hybrid"),
        (["index", "/no/such/folder"], "error: path /no/such/folder: no such file or folder"),
        (["index", "-C", "fresh"], "error: no PATH given: name the files or folders to index"),
        (["index", "-C", "nope", "--reembed"], "error: collection nope: not found (--reembed"),
        (
            ["index", "-C", "home", "--embedder", "fast"],
            "error: collection home: built with embedder 'hashing', not 'fast' (switch it with "
            "`chatapp index -C home --reembed --embedder fast`",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(indexed: Path, capsys, argv, message) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_korean_query_finds_korean_document(tmp_path: Path, hashing, capsys) -> None:
    corpus = write_corpus(
        tmp_path / "ko",
        {
            "설치.md": "# 설치 안내\n\n패키지를 설치하려면 pip install chatapp 명령을 실행하세요.\n",
            "요리.md": "# 김치찌개\n\n김치와 돼지고기를 넣고 끓이세요.\n",
            **CORPUS,
        },
    )
    assert run_cli(["index", str(corpus), "-C", "한국어"], capsys)[0] == 0
    code, out, _ = run_cli(
        ["search", "설치 방법", "-C", "한국어", "--json", "--mode", "bm25"], capsys
    )
    assert code == 0 and json.loads(out)[0]["path"].endswith("설치.md")
    code, out, _ = run_cli(["search", "김치찌개 끓이는 법", "-C", "한국어", "--json"], capsys)
    assert code == 0 and json.loads(out)[0]["path"].endswith("요리.md")


def test_batch_file_with_invalid_utf8(indexed: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "q.txt"
    bad.write_bytes(b"\xff\xfe")
    code, _, err = run_cli(["search", "--batch", str(bad), "-C", "home"], capsys)
    assert code == 2 and err.strip() == f"error: batch file {bad}: not valid UTF-8"


def test_other_embedder_for_existing_collection_is_refused(indexed: Path, capsys) -> None:
    code, _, err = run_cli(["index", str(indexed), "-C", "home", "--embedder", "fast"], capsys)
    assert code == 2
    assert err.strip().startswith(
        "error: collection home: built with embedder 'hashing', not 'fast'"
    )


def test_index_summary_lists_skipped_files(tmp_path: Path, hashing, capsys) -> None:
    corpus = write_corpus(tmp_path / "d", {"ok.md": "# A\n\nText.\n"})
    (corpus / "bin.dat").write_bytes(b"\x00\x01\x02")
    code, _, err = run_cli(["index", str(corpus), "-C", "mixed"], capsys)
    assert code == 0
    assert "done: 1 indexed" in err and "1 skipped" in err
    assert "skipped  " in err and "bin.dat: binary file (contains NUL bytes)" in err


def test_watch_reindexes_on_change(tmp_path: Path, hashing) -> None:
    """--watch's loop: a new file is indexed without running the command again."""
    import watchfiles

    from chatapp.embedding.embedder import HashingEmbedder
    from chatapp.retrieval.ingest.indexing import index_paths
    from chatapp.retrieval.store.collection import create_or_open

    corpus = write_corpus(tmp_path / "w", {"a.md": "# A\n\nFirst.\n"})
    coll = create_or_open("watched", embedder="hashing", chunk_tokens=50, chunk_overlap=0)
    stop = threading.Event()
    seen: list[list[str]] = []

    def loop() -> None:
        for _ in watchfiles.watch(corpus, stop_event=stop, debounce=100, rust_timeout=200):
            seen.append(index_paths(coll, [corpus], HashingEmbedder).indexed)

    index_paths(coll, [corpus], HashingEmbedder)
    watcher = threading.Thread(target=loop, daemon=True)
    watcher.start()
    time.sleep(0.5)  # let the watcher start before the change it must see
    (corpus / "b.md").write_text("# B\n\nSecond.\n", encoding="utf-8")
    deadline = time.monotonic() + 20
    while not any(str(corpus / "b.md") in batch for batch in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    watcher.join(timeout=5)
    coll.close()
    assert any(str(corpus / "b.md") in batch for batch in seen)


def test_static_embedder_wraps_a_model2vec_folder(tmp_path: Path, minilm_tokenizer) -> None:
    from model2vec import StaticModel

    vectors = np.random.default_rng(0).normal(size=(minilm_tokenizer.get_vocab_size(), 16))
    StaticModel(vectors.astype(np.float32), minilm_tokenizer).save_pretrained(str(tmp_path / "m"))
    embedder = StaticEmbedder(tmp_path / "m")
    out = embedder.embed(["hello world", "hello world", "something else"])
    assert out.shape == (3, 16) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[0], out[1]) and not np.allclose(out[0], out[2])
    assert embedder.count_tokens("hello world") == 2


@pytest.fixture
def minilm_tokenizer():
    from tokenizers import Tokenizer

    from chatapp.models.bundled import bundled_embedder_dir

    return Tokenizer.from_file(str(bundled_embedder_dir() / "tokenizer.json"))


@pytest.mark.slow
def test_minilm_search_finds_the_answering_file(tmp_path: Path, minilm, capsys) -> None:
    from chatapp.retrieval.ingest.indexing import index_paths
    from chatapp.retrieval.search.hybrid import Searcher
    from chatapp.retrieval.store.collection import create_or_open

    corpus = write_corpus(tmp_path / "docs", CORPUS)
    coll = create_or_open("real", embedder="bundled", chunk_tokens=200, chunk_overlap=32)
    summary = index_paths(coll, [corpus], lambda: minilm)
    assert len(summary.indexed) == 4
    searcher = Searcher(coll, minilm)
    hits = searcher.search("How much sunlight do tomato plants need?", 3, min_score=0.25)
    assert hits[0].path.endswith("tomatoes.md") and hits[0].similarity > 0.4
    assert searcher.search("Who won the 1998 football world cup?", 3, min_score=0.25) == []
    coll.close()


@pytest.mark.slow
def test_unknown_embedder_model_is_one_line_and_creates_nothing(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "d", {"a.md": "# A\n\nText.\n"})
    argv = ["index", str(corpus), "-C", "other", "--embedder", "no-such-org/no-such-model"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert err.startswith("error: embedder no-such-org/no-such-model: cannot be loaded offline")
    assert err.count("\n") == 1
    assert run_cli(["collections", "list", "--json"], capsys)[1].strip() == "[]"


@pytest.mark.slow  # loads USE multilingual
def test_reembed_switches_a_collection_and_keeps_it_searchable(
    indexed: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatapp.retrieval.store.collection import open_collection

    with open_collection("home") as coll:
        before = coll.manifest.counts()
    monkeypatch.delenv("CHATAPP_RETRIEVAL__EMBEDDER")
    code, out, err = run_cli(
        ["index", "-C", "home", "--reembed", "--embedder", "use-multilingual", "--json"], capsys
    )
    assert code == 0, err
    assert len(json.loads(out)["indexed"]) == 4
    with open_collection("home") as coll:
        assert coll.embedder_setting == "use-multilingual"
        assert coll.space_counts() == {"use-multilingual": coll.manifest.counts()[1]}
        assert coll.known_spaces() == ["use-multilingual"]  # the old store was dropped
        assert coll.manifest.counts()[0] == before[0]
    code, out, _ = run_cli(["search", "pruning roses in winter", "-C", "home", "--json"], capsys)
    results = json.loads(out)
    assert code == 0 and results and results[0]["space"] == "use-multilingual"
