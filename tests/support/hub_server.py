"""A local stand-in for the Hugging Face Hub, for download tests and benchmarks (no network).

It speaks the parts of the hub's HTTP API that huggingface-hub uses to list and download files,
the way the real hub answers them:

- ``GET /api/models/{repo}[/revision/{rev}]`` — repo info with ``siblings`` (``?blobs=true`` adds
  sizes and LFS sha256s); a missing repo is ``401`` with ``X-Error-Code: RepoNotFound``.
- ``GET /api/models?search=…&filter=gguf`` — search.
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` — LFS files answer ``302`` to a second server on
  another port (the "CDN") carrying ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256) and
  ``X-Linked-Size``; a missing file is ``404`` with ``X-Error-Code: EntryNotFound``.
- ``HEAD|GET /blobs/{sha256}`` on the CDN — the bytes, with ``Range`` support (``206``).

Faults for tests: ``drop_next_download(after_bytes, then_fail=n)`` closes the next blob download
after that many bytes and answers the following ``n`` blob requests with ``503``; a file added
with ``claimed_sha256`` serves bytes that do not match what the API publishes. ``bytes_served``
counts body bytes sent by the CDN.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class HubFile:
    content: Path | bytes
    sha256: str
    """What the hub publishes (normally the real sha256 of ``content``)."""
    lfs: bool = True

    @property
    def size(self) -> int:
        return self.content.stat().st_size if isinstance(self.content, Path) else len(self.content)


@dataclass
class HubRepo:
    repo_id: str
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)
    downloads: int = 0


def _sha256_of(content: Path | bytes) -> str:
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    sha = hashlib.sha256()
    with content.open("rb") as handle:
        while block := handle.read(8 << 20):
            sha.update(block)
    return sha.hexdigest()


class HubServer:
    """Two loopback HTTP servers: the hub API (``endpoint``) and the file CDN."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.blobs: dict[str, HubFile] = {}
        self.requests: list[dict[str, Any]] = []
        self.bytes_served = 0
        self.rate_limit: float | None = None
        """Bytes per second the CDN sends at most (None: as fast as loopback goes)."""
        self._drop_after: int | None = None
        self._fail_next = 0
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=True))
        self._hub.daemon_threads = self._cdn.daemon_threads = True
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in (self._hub, self._cdn)
        ]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> HubServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_file(
        self,
        repo_id: str,
        name: str,
        content: Path | bytes,
        *,
        claimed_sha256: str | None = None,
        lfs: bool = True,
    ) -> HubFile:
        """Publish ``content`` as ``repo_id/name`` (creating the repo)."""
        repo = self.repos.get(repo_id)
        if repo is None:
            commit = hashlib.sha1(repo_id.encode()).hexdigest()
            repo = self.repos[repo_id] = HubRepo(repo_id, commit)
        sha = claimed_sha256 or _sha256_of(content)
        hub_file = HubFile(content, sha, lfs)
        repo.files[name] = hub_file
        # A corrupt file is stored under its claimed sha, like a CDN serving bad bytes.
        self.blobs[sha] = hub_file
        return hub_file

    def drop_next_download(self, after_bytes: int, then_fail: int = 0) -> None:
        """Cut the next blob download after ``after_bytes``; answer ``then_fail`` more with 503."""
        with self._lock:
            self._drop_after = after_bytes
            self._fail_next = then_fail

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_served = 0
            self.requests.clear()

    # -- used by the handler ------------------------------------------------------------------
    def _take_fault(self) -> tuple[int | None, bool]:
        with self._lock:
            if self._drop_after is not None:
                drop, self._drop_after = self._drop_after, None
                return drop, False
            if self._fail_next:
                self._fail_next -= 1
                return None, True
            return None, False

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_served += n


def _handler(hub: HubServer, cdn: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def do_GET(self) -> None:
            self._dispatch(head=False)

        def _dispatch(self, head: bool) -> None:
            url = urlsplit(self.path)
            hub.requests.append(
                {
                    "server": "cdn" if cdn else "hub",
                    "method": "HEAD" if head else "GET",
                    "path": url.path,
                    "range": self.headers.get("Range"),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            path = unquote(url.path)
            if cdn and path.startswith("/blobs/"):
                return self._blob(path.removeprefix("/blobs/"), head)
            if not cdn and path == "/api/models":
                return self._search(parse_qs(url.query))
            if not cdn and path.startswith("/api/models/"):
                return self._model_info(path.removeprefix("/api/models/"), parse_qs(url.query))
            match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if not cdn and match:
                repo_id, revision, name = match.groups()
                return self._resolve(repo_id, revision, name, head=head)
            self._error(404, None, "Not Found")

        # -- responses ---------------------------------------------------------------------
        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str | None, message: str, **headers: str) -> None:
            extra = dict(headers)
            if code:
                extra["X-Error-Code"] = code
                extra["X-Error-Message"] = message
            self._json(status, {"error": message}, extra)

        def _repo(self, repo_id: str) -> HubRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                # The hub answers 401 (not 404) so private repos cannot be probed.
                self._error(401, "RepoNotFound", "Repository not found")
            return repo

        def _model_info(self, rest: str, query: dict[str, list[str]]) -> None:
            repo_id, _, revision = rest.partition("/revision/")
            repo = self._repo(repo_id)
            if repo is None:
                return
            if revision and revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for name, f in repo.files.items():
                sibling: dict[str, Any] = {"rfilename": name}
                if blobs:
                    sibling["size"] = f.size
                    sibling["blobId"] = hashlib.sha1(f.sha256.encode()).hexdigest()
                    if f.lfs:
                        sibling["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
                siblings.append(sibling)
            self._json(200, self._summary(repo) | {"sha": repo.commit, "siblings": siblings})

        def _summary(self, repo: HubRepo) -> dict[str, Any]:
            return {
                "id": repo.repo_id,
                "_id": repo.commit[:24],
                "modelId": repo.repo_id,
                "private": False,
                "downloads": repo.downloads,
                "likes": 0,
                "tags": ["gguf"] if any(n.endswith(".gguf") for n in repo.files) else [],
                "lastModified": "2025-01-01T00:00:00.000Z",
            }

        def _search(self, query: dict[str, list[str]]) -> None:
            text = query.get("search", [""])[0].lower()
            filters = query.get("filter", [])
            limit = int(query.get("limit", ["1000"])[0])
            found = []
            for repo in sorted(hub.repos.values(), key=lambda r: -r.downloads):
                summary = self._summary(repo)
                if text in repo.repo_id.lower() and all(f in summary["tags"] for f in filters):
                    found.append(summary)
            self._json(200, found[:limit])

        def _resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            if revision not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            f = repo.files.get(name)
            if f is None:
                return self._error(
                    404, "EntryNotFound", f"{name} does not exist", **{"X-Repo-Commit": repo.commit}
                )
            if f.lfs:
                self.send_response(302)
                self.send_header("Location", f"{hub.cdn}/blobs/{f.sha256}?signature=test")
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                self.send_header("X-Linked-Size", str(f.size))
                self.send_header("ETag", f'"{hashlib.sha1(name.encode()).hexdigest()}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_content(f, head, {"X-Repo-Commit": repo.commit})

        def _blob(self, sha: str, head: bool) -> None:
            f = hub.blobs.get(sha)
            if f is None:
                return self._error(404, None, "no such blob")
            self._send_content(f, head, {})

        def _send_content(self, f: HubFile, head: bool, headers: dict[str, str]) -> None:
            drop_after, fail = (None, False) if head else hub._take_fault()
            if fail:
                return self._error(503, None, "Service Unavailable")
            size = f.size
            start, end = 0, size - 1
            status = 200
            match = _RANGE_RE.match(self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{f.sha256}"')
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            budget = length if drop_after is None else min(length, drop_after)
            sent = self._send_body(f, start, budget)
            hub._count(sent)
            if drop_after is not None:
                self.close_connection = True
                self.connection.shutdown(2)

        def _send_body(self, f: HubFile, start: int, count: int) -> int:
            try:
                if hub.rate_limit:
                    return self._send_paced(f, start, count, hub.rate_limit)
                if isinstance(f.content, bytes):
                    self.wfile.write(f.content[start : start + count])
                    return count
                self.wfile.flush()
                with f.content.open("rb") as handle:
                    return self.connection.sendfile(handle, offset=start, count=count)
            except (BrokenPipeError, ConnectionResetError):
                return 0

        def _send_paced(self, f: HubFile, start: int, count: int, rate: float) -> int:
            """Send in 256 KB slices, sleeping to hold ``rate`` bytes/s (a real link's pace)."""
            import time

            data = f.content if isinstance(f.content, bytes) else None
            handle = None if data is not None else open(f.content, "rb")  # noqa: SIM115
            began, sent = time.perf_counter(), 0
            try:
                while sent < count:
                    n = min(256 * 1024, count - sent)
                    if data is not None:
                        self.wfile.write(data[start + sent : start + sent + n])
                    else:
                        assert handle is not None
                        n = self.connection.sendfile(handle, offset=start + sent, count=n)
                    sent += n
                    ahead = sent / rate - (time.perf_counter() - began)
                    if ahead > 0:
                        time.sleep(ahead)
            finally:
                if handle is not None:
                    handle.close()
            return sent

    return Handler
