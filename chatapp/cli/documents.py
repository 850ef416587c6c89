"""``chatapp index``, ``chatapp search`` and ``chatapp collections``: local documents.

``index`` walks files and folders into a named collection (incremental; Ctrl+C stops cleanly
and the next run resumes), ``search`` ranks chunks by hybrid dense + keyword search, and
``collections list|info|check|rm`` manage what was indexed. Heavy libraries load inside the
commands. Document text printed to a terminal has its control characters shown escaped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chatapp.errors import UsageError
from chatapp.terminal_text import for_stream

collections_app = typer.Typer(
    help="Document collections built by `chatapp index`: list, info, check, rm.",
    no_args_is_help=True,
)

CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", "-C", help="Collection name (default: retrieval.collection)."),
]
ChromaOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url", help="Use a Chroma server (`chroma run`), e.g. http://127.0.0.1:8000."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.command("index")(index)
    app.command("search")(search)
    app.add_typer(collections_app, name="collections")


def _settings(chroma_url: str | None = None, embedder: str | None = None) -> Any:
    from chatapp.config import load_settings

    overrides: dict[str, Any] = {}
    if chroma_url:
        overrides.setdefault("retrieval", {})["chroma_url"] = chroma_url
    if embedder:
        overrides.setdefault("retrieval", {})["embedder"] = embedder
    return load_settings(overrides)


def _err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _shown(path: str) -> str:
    """A path for the messages on stderr: relative to here, escaped on a terminal."""
    shown = Path(path)
    if shown.is_relative_to(Path.cwd()):
        path = str(shown.relative_to(Path.cwd()))
    return for_stream(path, sys.stderr)


# -- index --------------------------------------------------------------------------------


def index(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files and folders (default: the ones this collection indexed)."),
    ] = None,
    collection: CollectionOpt = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Only files matching this glob.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Leave out files matching this glob.")
    ] = None,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Also index hidden files and folders.")
    ] = False,
    no_gitignore: Annotated[
        bool, typer.Option("--no-gitignore", help="Also index paths .gitignore excludes.")
    ] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--follow-symlinks",
            help="Also follow symlinks that lead outside the given folders (skipped by default).",
        ),
    ] = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="auto (default: MiniLM for English, USE multilingual for Korean and other "
            "scripts), bundled (MiniLM), use-multilingual, fast (static, ~40x faster), or a "
            "sentence-transformers model; for a new collection, or with --reembed.",
        ),
    ] = None,
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="Switch an existing collection to --embedder (default: auto) and re-embed "
            "its chunks; it stays searchable meanwhile, and an interrupted run resumes.",
        ),
    ] = False,
    max_file_mb: Annotated[
        float, typer.Option("--max-file-mb", min=0.001, help="Skip files larger than this.")
    ] = 50.0,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep running and re-index when files change.")
    ] = False,
    chroma_url: ChromaOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index files and folders so answers can come from them (only changes are re-done)."""
    from chatapp.embedding.embedder import DEFAULT_EMBEDDER, create_embedder, embedder_key
    from chatapp.retrieval.ingest.indexing import IndexOptions, index_paths
    from chatapp.retrieval.store import collection as coll_mod

    settings = _settings(chroma_url, embedder)
    # Unless the user named one (flag, config or environment), a new collection gets the
    # default pipeline, which suits English, Korean and mixed folders alike.
    chosen = settings.retrieval.embedder
    if "embedder" not in settings.retrieval.model_fields_set:
        chosen = DEFAULT_EMBEDDER
    name = coll_mod.check_name(collection or settings.retrieval.collection)
    url = coll_mod.resolve_url(settings)
    exists = coll_mod.collection_exists(name, url)
    if reembed and not exists:
        raise UsageError(f"collection {name}: not found (--reembed switches an existing one)")
    roots = [str(p) for p in paths or []]
    if not roots:
        if not coll_mod.collection_exists(name, url):
            raise UsageError("no PATH given: name the files or folders to index")
        with coll_mod.open_collection(name, url) as existing:
            roots = list(existing.manifest.get_meta("roots", []))
        if not roots:
            raise UsageError(f"collection {name}: no folders recorded; give PATH")
    for root in roots:
        if not Path(root).expanduser().exists():
            raise UsageError(f"path {root}: no such file or folder")
    if not exists or reembed:
        _warn_embedder_fit(embedder_key(chosen))
        # Make sure the embedder loads before recording it.
        create_embedder(chosen)
    coll = coll_mod.create_or_open(
        name,
        embedder=chosen,
        chunk_tokens=settings.retrieval.chunk_tokens,
        chunk_overlap=settings.retrieval.chunk_overlap,
        chroma_url=url,
        strict=embedder is not None and not reembed,
    )
    if reembed and coll.embedder_setting != embedder_key(chosen):
        coll.switch_embedder(chosen)
    options = IndexOptions(
        include=include or [],
        exclude=exclude or [],
        include_hidden=hidden,
        respect_gitignore=not no_gitignore,
        follow_symlinks=follow_symlinks,
        max_file_bytes=int(max_file_mb * 1024 * 1024),
        reembed=reembed,
    )
    setting = coll.embedder_setting

    def run_once() -> Any:
        with _IndexProgressView(enabled=not as_json and sys.stderr.isatty()) as view:
            return index_paths(
                coll,
                roots,
                lambda: create_embedder(setting),
                options,
                on_progress=view.update,
                on_wait=_say_waiting,
            )

    try:
        summary = run_once()
        _print_summary(summary, as_json)
        if summary.interrupted:
            raise typer.Exit(130)
        if watch:
            _watch(roots, run_once, as_json)
    finally:
        coll.close()


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _warn_embedder_fit(key: str) -> None:
    """Say so before loading an embedder this machine has too little memory for."""
    from chatapp.models.hardware import embedder_fit

    known = embedder_fit(key)
    if known is not None and known[0] != "fits":
        need = known[1].ram_bytes / 1e9
        print(f"warning: embedder {key} needs about {need:.1f} GB of RAM: {known[0]} here",
              file=sys.stderr)  # fmt: skip


def _watch(roots: list[str], run_once: Any, as_json: bool) -> None:
    """Re-index whenever something under the roots changes, until Ctrl+C."""
    import watchfiles

    print(f"watching {', '.join(roots)} — Ctrl+C to stop", file=sys.stderr)
    try:
        for _changes in watchfiles.watch(*roots, debounce=800, raise_interrupt=False):
            summary = run_once()
            if summary.changed or summary.skipped:
                _print_summary(summary, as_json)
    except KeyboardInterrupt:
        pass


class _IndexProgressView:
    """A rich progress bar on stderr: files, chunks/s and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _IndexProgressView:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files  {task.fields[rate]:>6.1f} chunks/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[current]}", style="dim", markup=False),
                console=_err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("index", total=None, rate=0.0, current="")
        return self

    def update(self, progress: Any) -> None:
        if self._progress is None:
            return
        current = for_stream(Path(progress.current).name, sys.stderr) if progress.current else ""
        self._progress.update(
            self._task,
            total=progress.files_total,
            completed=progress.files_done,
            rate=progress.chunks_per_s,
            current=current[:40],
        )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    err = _err()
    rate = summary.chunks_added / summary.elapsed_s if summary.elapsed_s else 0.0
    head = "stopped" if summary.interrupted else "done"
    err.print(
        f"{head}: {len(summary.indexed)} indexed, {summary.unchanged} unchanged, "
        f"{len(summary.removed)} removed, {len(summary.renamed)} renamed, "
        f"{len(summary.skipped)} skipped, {summary.ignored} ignored — "
        f"{summary.chunks_added} chunks embedded in {summary.elapsed_s:.1f}s ({rate:.1f}/s) "
        f"into collection '{summary.collection}'",
        markup=False,
    )
    for old, new in summary.renamed:
        err.print(f"  renamed  {_shown(old)} → {_shown(new)}", markup=False)
    for path, reason in summary.skipped:
        err.print(f"  skipped  {_shown(path)}: {for_stream(reason, sys.stderr)}", markup=False)
    if summary.interrupted:
        err.print(
            "  stopped early: every file is either fully old or fully new; "
            "run the same command again to finish",
            markup=False,
        )


# -- search -------------------------------------------------------------------------------


def search(
    query: Annotated[list[str] | None, typer.Argument(help="What to look for.")] = None,
    collection: CollectionOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=100, help="How many results.")] = 5,
    batch: Annotated[
        Path | None,
        typer.Option("--batch", help="A file with one query a line; prints one JSON line each."),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense or bm25.")] = "hybrid",
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Similarity threshold (default: per embedder)."),
    ] = None,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the passages of your documents that best match a query."""
    from chatapp.retrieval.search.hybrid import Searcher, explicit_min_score
    from chatapp.retrieval.store import collection as coll_mod

    if mode not in ("hybrid", "dense", "bm25"):
        raise UsageError(f"--mode {mode}: use hybrid, dense or bm25")
    text = " ".join(query or []).strip()
    if batch is None and not text:
        raise UsageError("empty query: give words to search for, or --batch FILE")
    if batch is not None and text:
        raise UsageError("--batch and a QUERY: give only one")
    from chatapp.text.language import has_hangul

    if text and has_hangul(text):
        from chatapp.text import korean_prefetch

        # Kiwi loads in a child process while this one loads everything else.
        korean_prefetch.start(text)
    queries: list[str] = []
    if batch is not None:
        try:
            queries = [q.strip() for q in batch.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            reason = (
                "not valid UTF-8"
                if isinstance(exc, UnicodeDecodeError)
                else (exc.strerror or str(exc))
            )
            raise UsageError(f"batch file {batch}: {reason}") from None
        queries = [q for q in queries if q]
    settings = _settings(chroma_url)
    name = coll_mod.check_name(collection or settings.retrieval.collection)
    with coll_mod.open_collection(name, coll_mod.resolve_url(settings)) as coll:
        # Thresholds are per embedder and query language unless one is given.
        bar = min_score if min_score is not None else explicit_min_score(settings)
        searcher = Searcher(coll)
        if batch is not None:
            for q in queries:
                found = searcher.retrieve(q, k, min_score=bar, mode=mode, calibrated=True)  # type: ignore[arg-type]
                line = {
                    "query": q,
                    "language": found.plan.language,
                    "threshold": found.plan.threshold,
                    **(found.decision.to_dict() if found.decision else {}),
                    "results": [h.to_dict() for h in found.hits],
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
            return
        found = searcher.retrieve(text, k, min_score=bar, mode=mode, calibrated=True)  # type: ignore[arg-type]
    hits, decision = found.hits, found.decision
    if as_json:
        by = {"decided_by": decision.by} if decision else {}
        print(json.dumps([{**h.to_dict(), **by} for h in hits], ensure_ascii=False))
        if not hits:  # stdout stays a list; why it is empty goes beside it
            print(for_stream(_refusal_line(name, found), sys.stderr), file=sys.stderr)
        return
    if not hits:
        print(for_stream(_refusal_line(name, found), sys.stdout))
        return
    for hit in hits:
        where = f"{_shown(hit.path)}"
        if hit.page is not None:
            where += f" p.{hit.page}"
        if hit.start_line is not None:
            where += f":{hit.start_line}-{hit.end_line}"
        heading = f"  § {hit.heading}" if hit.heading else ""
        head = f"{hit.rank}. {where}  score {hit.score:.2f}  sim {hit.similarity:.2f}{heading}"
        print(for_stream(head, sys.stdout))
        preview = " ".join(hit.text.split())
        print(for_stream(f"   {preview[:240]}{'…' if len(preview) > 240 else ''}", sys.stdout))


def _refusal_line(name: str, found: Any) -> str:
    """Why a search found nothing: the evidence that decided, against its bars."""
    decision, plan = found.decision, found.plan
    head = f"no passage in collection '{name}' is relevant enough"
    if decision is None or decision.evidence is None:
        return f"{head} (similarity < {plan.threshold})"
    ev, bars = decision.evidence, plan.calibration
    if decision.by == "missing_term":
        return f"{head} (decided by missing_term: no passage holds {', '.join(ev.missing)})"
    if bars is None:
        return f"{head} (decided by {decision.by}: similarity {ev.dense:.2f} < {plan.threshold})"
    return (
        f"{head} (decided by {decision.by}: similarity {ev.dense:.2f} < {bars.dense}, "
        f"keyword coverage {ev.coverage:.2f} < {bars.coverage})"
    )


# -- collections --------------------------------------------------------------------------


@collections_app.command("list")
def collections_list(chroma_url: ChromaOpt = None, as_json: JsonOpt = False) -> None:
    """Collections, with their size and embedder."""
    from chatapp.retrieval.store.collection import list_collections, resolve_url

    infos = list_collections(resolve_url(_settings(chroma_url)))
    if as_json:
        print(json.dumps([i.to_dict() for i in infos], ensure_ascii=False))
        return
    if not infos:
        print("no collections yet — create one with `chatapp index PATH`")
        return
    for info in infos:
        print(f"{info.name}\t{info.files} files\t{info.chunks} chunks\t{info.embedder}")


@collections_app.command("info")
def collections_info(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What a collection holds and how it was built."""
    from chatapp.retrieval.store.collection import check_name, open_collection, resolve_url

    with open_collection(check_name(name), resolve_url(_settings(chroma_url))) as coll:
        info = coll.info()
        files = sorted(coll.manifest.files().values(), key=lambda f: f.path)
    if as_json:
        data = info.to_dict()
        data["file_list"] = [
            {"path": f.path, "size": f.size, "chunks": f.n_chunks, "kind": f.kind} for f in files
        ]
        print(json.dumps(data, ensure_ascii=False))
        return
    for key, value in info.to_dict().items():
        if key in ("created_at", "updated_at") and value:
            import datetime as dt

            value = dt.datetime.fromtimestamp(value).isoformat(timespec="seconds")
        print(f"{key:14} {value}")


@collections_app.command("check")
def collections_check(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report; change nothing (exit 1 if drifted).")
    ] = False,
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that the vector store holds exactly what the manifest lists, and repair it."""
    from chatapp.retrieval.ingest.collection_check import check_collection
    from chatapp.retrieval.store.collection import check_name, open_collection, resolve_url

    with open_collection(check_name(name), resolve_url(_settings(chroma_url))) as coll:
        report = check_collection(coll, repair=not dry_run, on_wait=_say_waiting)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.lines(_shown, dry_run=dry_run):
            print(for_stream(line, sys.stdout))
    if dry_run and not report.consistent:
        raise typer.Exit(1)


@collections_app.command("rm")
def collections_rm(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    chroma_url: ChromaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a collection (its vectors and manifest; your files are not touched)."""
    from chatapp.retrieval.store.collection import check_name, remove_collection, resolve_url

    info = remove_collection(check_name(name), resolve_url(_settings(chroma_url)))
    if as_json:
        print(json.dumps({"removed": info.name, "files": info.files, "chunks": info.chunks}))
        return
    print(f"removed collection '{info.name}' ({info.files} files, {info.chunks} chunks)")
