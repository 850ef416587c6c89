"""``chatapp models pull``: download a GGUF from the Hugging Face Hub, verified before use.

The steps, in order: read the repo's file list (sizes and LFS sha256s) and the file's metadata
from the hub; refuse before downloading if the disk is too small; stream the bytes into
``models_dir()/.partial/…`` (a partial file left by an interrupted run is resumed with an HTTP
Range request, not started over), hashing while downloading; check size, sha256 and the GGUF
magic; only then move the file into place and record it in the registry. A corrupt download is
deleted. Nothing under ``.partial`` is ever listed as installed.

huggingface-hub does the talking (repo listing, file metadata, URLs, auth headers, its HTTP
session and error types); the byte stream is our own short loop rather than ``hf_hub_download``
because that deletes a partial file when interrupted (no resume across runs), cannot hash while
it writes, and reports progress only every 10 MB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatapp import paths
from chatapp.domain import CancelToken
from chatapp.errors import ChatappError, ModelNotFoundError, UsageError
from chatapp.models import hardware
from chatapp.models.catalog import CatalogModel, load_catalog
from chatapp.models.hub import (
    HubError,
    RepoListing,
    hub_endpoint,
    hub_errors,
    hub_online,
    hub_token,
    is_sha256,
    list_repo,
)
from chatapp.models.registry import (
    PARTIAL_DIR,
    InstalledModel,
    RegistryEntry,
    find_installed,
    record_entry,
    split_spec,
    unknown_model_error,
)

ProgressCallback = Callable[[int, int], None]
"""Called as bytes arrive with (bytes on disk so far, total bytes)."""
FreeDiskFunction = Callable[[Path], int]
# Room left over after the download so the machine is not left with a full disk.
DISK_HEADROOM_BYTES = 256 * 1024 * 1024
_SPLIT_RE = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_READ_BLOCK = 8 * 1024 * 1024
_RETRIES = 5
log = logging.getLogger(__name__)


class DiskSpaceError(ChatappError):
    """Not enough free disk for a download (raised before any byte is fetched)."""

    exit_code = 1


class DownloadCancelled(ChatappError):
    """The user stopped a download; the partial file stays so the next pull resumes it."""

    exit_code = 130


class ChecksumError(ChatappError):
    """A downloaded file whose sha256 or size differs from what the hub published."""

    exit_code = 1


@dataclass(frozen=True)
class PullPlan:
    """Everything known about a download before it starts."""

    name: str
    repo: str
    revision: str
    filename: str
    size: int
    sha256: str
    url: str
    quant: str | None
    catalog: str | None

    @property
    def destination(self) -> Path:
        owner, _, repo_name = self.repo.partition("/")
        return paths.models_dir() / owner / repo_name / self.filename

    @property
    def partial(self) -> Path:
        flat = f"{self.repo.replace('/', '--')}--{self.filename}"
        return paths.models_dir() / PARTIAL_DIR / f"{flat}.part"


def _quant_of(filename: str) -> str | None:
    from chatapp.models.gguf import FILE_TYPES

    upper = filename.upper()
    labels = sorted(set(FILE_TYPES.values()), key=len, reverse=True)
    return next((q for q in labels if re.search(rf"[-_.]{q}[-_.]", upper)), None)


def _pick_file(listing: RepoListing, selector: str | None, default_quant: str) -> str:
    """The GGUF file in ``listing`` that ``selector`` (file name or quant label) names."""
    ggufs = [f.name for f in listing.gguf_files]
    if not ggufs:
        raise ModelNotFoundError(f"repo {listing.repo!r}: has no GGUF files (chatapp runs GGUF)")
    choices = ", ".join(sorted(ggufs)[:12]) + (" …" if len(ggufs) > 12 else "")
    if selector and selector.lower().endswith(".gguf"):
        match = next((g for g in ggufs if g.lower() == selector.lower()), None)
        if match is None:
            raise ModelNotFoundError(
                f"file {selector!r}: not in repo {listing.repo!r} (GGUF files there: {choices})"
            )
        return match
    if selector is None and len(ggufs) == 1:
        return ggufs[0]
    wanted = (selector or default_quant).upper()
    matches = [g for g in ggufs if _quant_of(g) == wanted]
    if not matches:
        raise ModelNotFoundError(
            f"repo {listing.repo!r}: no {wanted} file (GGUF files there: {choices}); "
            f"name one with {listing.repo}:FILE"
        )
    whole = [g for g in matches if not _SPLIT_RE.search(g)]
    if not whole:
        raise UsageError(
            f"repo {listing.repo!r}: the {wanted} model is split into parts ({matches[0]}, …); "
            "chatapp downloads single-file GGUFs only"
        )
    return min(whole, key=len)


def _local_name(catalog: CatalogModel | None, quant: str | None, filename: str) -> str:
    default = load_catalog().default_quant
    if catalog is None:
        return Path(filename).stem.lower()
    if quant is None or quant.upper() == default.upper():
        return catalog.name
    return f"{catalog.name}-{quant.lower()}"


def plan_pull(spec: str) -> PullPlan:
    """Resolve ``NAME[:QUANT]`` or ``REPO[:FILE|QUANT]`` against the hub (two small requests)."""
    catalog = load_catalog()
    base, selector = split_spec(spec.strip())
    entry = catalog.get(base)
    file_selector: str | None
    if entry is not None:
        repo = entry.repo
        if selector and not selector.lower().endswith(".gguf"):
            quant_key = next((k for k in entry.quants if k.upper() == selector.upper()), None)
            file_selector = entry.quants[quant_key].file if quant_key else selector
        elif selector:
            file_selector = selector
        else:
            file_selector = entry.quant(None, catalog.default_quant)[1].file
    elif base.count("/") == 1 and all(base.split("/")):
        repo, file_selector = base, selector
        entry = catalog.by_repo(repo)
    else:
        raise unknown_model_error(spec)
    listing = list_repo(repo)
    filename = _pick_file(listing, file_selector, catalog.default_quant)
    listed = listing.file(filename)
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = hub_endpoint()
    url = hf_hub_url(listing.repo, filename, revision=listing.revision, endpoint=endpoint)
    with hub_online(), hub_errors(listing.repo, filename):
        meta = get_hf_file_metadata(url, token=hub_token(), endpoint=endpoint)
    sha256 = (listed.sha256 if listed else None) or (meta.etag if is_sha256(meta.etag) else None)
    if sha256 is None:
        raise HubError(
            f"file {listing.repo}/{filename}: the hub publishes no sha256 for it, so it cannot "
            "be verified; not downloading"
        )
    size = meta.size if meta.size is not None else (listed.size if listed else None)
    if size is None:
        raise HubError(f"file {listing.repo}/{filename}: the hub did not say how big it is")
    quant = _quant_of(filename)
    return PullPlan(
        name=_local_name(entry, quant, filename),
        repo=listing.repo,
        revision=listing.revision,
        filename=filename,
        size=size,
        sha256=sha256.lower(),
        url=meta.location or url,
        quant=quant,
        catalog=entry.name if entry else None,
    )


class _Hasher:
    """sha256 fed from a background thread, so hashing overlaps with receiving the next chunk
    (hashlib releases the GIL on large buffers)."""

    def __init__(self, start: Any = None) -> None:
        self._sha = start or hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._sha.update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def finish(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return str(self._sha.hexdigest())


def _hash_file(path: Path, sha: Any = None) -> Any:
    sha = sha or hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            sha.update(block)
    return sha


class _PartialFile:
    """The partial download: appends bytes, hashes them, reports progress."""

    def __init__(self, path: Path, total: int, on_progress: ProgressCallback | None) -> None:
        self.path = path
        self.total = total
        self.size = path.stat().st_size if path.exists() else 0
        # Hash what an earlier run left, so the finished file never needs a second read.
        self._hasher = _Hasher(_hash_file(path) if self.size else None)
        self._handle = path.open("ab")
        self._on_progress = on_progress
        self._report()

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.size, self.total)

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._hasher.update(data)
        self.size += len(data)
        self._report()

    def restart(self) -> None:
        """Start over from byte 0 (a server that ignored our Range request)."""
        self._handle.truncate(0)
        self._handle.seek(0)
        self._hasher.finish()
        self._hasher = _Hasher()
        self.size = 0
        self._report()

    def close(self) -> str:
        """Flush the file to disk and return the sha256 of everything in it."""
        self._handle.close()
        return self._hasher.finish()


def _stream(plan: PullPlan, target: _PartialFile, cancel: CancelToken | None = None) -> None:
    """GET the bytes after ``target.size`` (a Range request when resuming); a connection that
    drops mid-way is resumed from where it stopped, up to a few times in a row."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from chatapp.models.hub import network_errors

    headers = build_hf_headers(token=hub_token())
    headers["Accept-Encoding"] = "identity"  # the byte count must match the file's size
    if not plan.url.startswith(hub_endpoint()):
        headers.pop("authorization", None)  # a signed CDN URL must not receive the hub token
    retries_left = _RETRIES
    while target.size < plan.size:
        request_headers = dict(headers)
        if target.size:
            request_headers["Range"] = f"bytes={target.size}-"
        try:
            with get_session().stream(
                "GET",
                plan.url,
                headers=request_headers,
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                follow_redirects=True,
            ) as response:
                hf_raise_for_status(response)
                if target.size and response.status_code == 200:
                    target.restart()
                for chunk in response.iter_bytes():
                    if cancel is not None and cancel.cancelled:
                        raise DownloadCancelled(
                            f"download of {plan.filename}: stopped at "
                            f"{target.size / 1e9:.2f} of {plan.size / 1e9:.2f} GB "
                            "(pull again to resume)"
                        )
                    target.write(chunk)
                    retries_left = _RETRIES  # data arrived: the link works
                    if target.size > plan.size:
                        return  # more bytes than the hub announced; _verify rejects the file
        except network_errors() as exc:
            retries_left -= 1
            if retries_left <= 0:
                raise
            log.warning("download of %s interrupted (%s); resuming", plan.filename, exc)
            time.sleep(1.0)
        else:
            if target.size < plan.size:
                retries_left -= 1
                if retries_left <= 0:
                    return  # the server keeps ending early; _verify reports the short file


def _fetch(
    plan: PullPlan, on_progress: ProgressCallback | None, cancel: CancelToken | None = None
) -> str:
    """Download the missing bytes into the partial file; return the sha256 of the whole file."""
    target = _PartialFile(plan.partial, plan.size, on_progress)
    try:
        with hub_online(), hub_errors(plan.repo, plan.filename):
            _stream(plan, target, cancel)
    finally:
        digest = target.close()
    return digest


def _sidecar(plan: PullPlan) -> Path:
    return plan.partial.with_suffix(".json")


def _prepare_partial(plan: PullPlan) -> int:
    """Bytes already downloaded for this exact file; a stale or oversized partial is discarded."""
    partial, sidecar = plan.partial, _sidecar(plan)
    partial.parent.mkdir(parents=True, exist_ok=True)
    expected = {"repo": plan.repo, "file": plan.filename, "sha256": plan.sha256, "size": plan.size}
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    size = partial.stat().st_size if partial.exists() else 0
    if recorded != expected or size > plan.size:
        partial.unlink(missing_ok=True)
        size = 0
    sidecar.write_text(json.dumps(expected), encoding="utf-8")
    return size


def check_disk_space(plan: PullPlan, already: int, free_disk: FreeDiskFunction) -> None:
    """Refuse a download that would not fit (with headroom) before fetching any byte."""
    needed = plan.size - already
    free = free_disk(paths.models_dir())
    if free < needed + DISK_HEADROOM_BYTES:
        gb = 1e9
        raise DiskSpaceError(
            f"disk {paths.models_dir()}: {plan.filename} needs {needed / gb:.2f} GB "
            f"(+{DISK_HEADROOM_BYTES / gb:.2f} GB headroom) but only {free / gb:.2f} GB is free"
        )


def _verify(plan: PullPlan, digest: str) -> None:
    """Size and sha256 against the hub's figures; then the GGUF magic (a full header parse is
    left to ``models info`` and loading: a sha256 match already proves these are the publisher's
    bytes)."""
    size = plan.partial.stat().st_size
    problem = None
    if size != plan.size:
        problem = f"size {size} bytes, the hub says {plan.size}"
    elif digest != plan.sha256:
        problem = f"sha256 {digest[:12]}…, the hub says {plan.sha256[:12]}…"
    else:
        with plan.partial.open("rb") as handle:
            if handle.read(4) != b"GGUF":
                problem = "not a GGUF file"
    if problem is not None:
        plan.partial.unlink(missing_ok=True)
        _sidecar(plan).unlink(missing_ok=True)
        raise ChecksumError(
            f"file {plan.repo}/{plan.filename}: download corrupt ({problem}); removed it, "
            "run the pull again"
        )


def pull_model(
    spec: str,
    on_progress: ProgressCallback | None = None,
    free_disk: FreeDiskFunction = hardware.free_disk_bytes,
    plan: PullPlan | None = None,
    cancel: CancelToken | None = None,
) -> InstalledModel:
    """Download ``spec`` (catalog name or repo spec) and register it; returns the installed model.

    Resumes a partial download of the same file; returns at once when the file is already
    installed. ``cancel`` stops it between chunks (DownloadCancelled; the partial file stays). Raises a ChatappError with one line for every problem a user can hit.
    """
    from filelock import FileLock, Timeout

    plan = plan or plan_pull(spec)
    installed = find_installed(plan.name)
    if installed and not installed.missing and installed.sha256 == plan.sha256:
        return installed
    lock = FileLock(str(plan.partial.with_suffix(".lock")))
    plan.partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"model {plan.name!r}: another chatapp is downloading it") from None
    try:
        already = _prepare_partial(plan)
        check_disk_space(plan, already, free_disk)
        digest = _fetch(plan, on_progress, cancel)
        _verify(plan, digest)
        plan.destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(plan.partial, plan.destination)
        _sidecar(plan).unlink(missing_ok=True)
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)
    entry = RegistryEntry(
        name=plan.name,
        path=str(plan.destination),
        source="downloaded",
        repo=plan.repo,
        file=plan.filename,
        revision=plan.revision,
        quant=plan.quant,
        catalog=plan.catalog,
        sha256=plan.sha256,
        size_bytes=plan.size,
    )
    record_entry(entry)
    found = find_installed(plan.name)
    assert found is not None
    return found
