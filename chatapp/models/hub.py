"""Talking to the Hugging Face Hub (or a mirror set with ``HF_ENDPOINT``) through huggingface-hub.

chatapp runs with ``HF_HUB_OFFLINE=1`` so nothing it does touches the network by accident; an
explicit ``models pull`` or ``models search`` is the user asking for the network, so those calls
go through ``hub_online()``. huggingface-hub reads its environment once at import time, so this
module passes the endpoint and token explicitly on every call (``HF_ENDPOINT`` and ``HF_TOKEN``
are read when the call is made, not when the library was imported) and flips the library's
offline switch only for the duration of our own calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chatapp.errors import BackendUnavailableError, ChatappError, ModelNotFoundError

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class HubError(ChatappError):
    """The hub answered, but not with what we need (private repo, server error…)."""

    exit_code = 1


@dataclass(frozen=True)
class RepoFile:
    """A file in a hub repo, with the sha256 the hub publishes for LFS files."""

    name: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class RepoListing:
    """The files of one repo at one commit."""

    repo: str
    revision: str
    files: tuple[RepoFile, ...]

    @property
    def gguf_files(self) -> list[RepoFile]:
        return [f for f in self.files if f.name.lower().endswith(".gguf")]

    def file(self, name: str) -> RepoFile | None:
        return next((f for f in self.files if f.name == name), None)


@dataclass(frozen=True)
class SearchHit:
    repo: str
    downloads: int | None
    likes: int | None
    updated: str | None


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as set now (huggingface-hub itself only reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    """``HF_TOKEN`` if set, else the token saved by ``hf auth login``, else None."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def is_sha256(value: str | None) -> bool:
    return bool(value) and _SHA256_RE.match(value or "") is not None


@contextmanager
def hub_online() -> Iterator[None]:
    """Let huggingface-hub make requests for the duration of the block.

    chatapp's CLI sets HF_HUB_OFFLINE=1 for everything else; the library caches that value in
    ``huggingface_hub.constants`` at import, so flipping the environment variable is not enough.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


@contextmanager
def hub_errors(repo: str, filename: str | None = None) -> Iterator[None]:
    """Turn huggingface-hub and httpx exceptions into one-line chatapp errors."""
    from huggingface_hub import errors as hf

    endpoint = hub_endpoint()
    where = f"{repo}/{filename}" if filename else repo
    try:
        yield
    except hf.GatedRepoError:
        raise HubError(
            f"repo {repo!r}: gated; accept its license on {endpoint}/{repo} and set HF_TOKEN"
        ) from None
    except hf.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"repo {repo!r}: not found on {endpoint} (check the name; private repos need HF_TOKEN)"
        ) from None
    except hf.RevisionNotFoundError:
        raise ModelNotFoundError(f"repo {repo!r}: revision not found on {endpoint}") from None
    except (hf.RemoteEntryNotFoundError, hf.EntryNotFoundError):
        raise ModelNotFoundError(f"file {where!r}: not found on {endpoint}") from None
    except hf.OfflineModeIsEnabled:
        raise BackendUnavailableError(
            f"hub {endpoint}: offline mode is on (unset HF_HUB_OFFLINE to download)"
        ) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubError(f"hub {endpoint}: HTTP {status} for {where}") from None
    except network_errors() as exc:
        raise BackendUnavailableError(
            f"hub {endpoint}: cannot be reached ({type(exc).__name__}; offline? set HF_ENDPOINT "
            "for a mirror)"
        ) from None


def network_errors() -> tuple[type[BaseException], ...]:
    """Transport failures (refused, reset, timed out, cut short) of the HTTP clients
    huggingface-hub may use: httpx2 from 2.x on, httpx in 1.x."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


def _api():  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(), token=hub_token())


def list_repo(repo: str, revision: str | None = None) -> RepoListing:
    """The files of ``repo`` with sizes and LFS sha256s (one API call)."""
    with hub_online(), hub_errors(repo):
        info = _api().model_info(repo, revision=revision, files_metadata=True)
    files = tuple(
        RepoFile(
            name=s.rfilename,
            size=s.lfs.size if s.lfs else s.size,
            sha256=s.lfs.sha256 if s.lfs else None,
        )
        for s in info.siblings or []
    )
    return RepoListing(repo=info.id or repo, revision=info.sha or revision or "main", files=files)


def search_gguf_repos(query: str, limit: int = 20) -> list[SearchHit]:
    """Hub repos with GGUF files matching ``query``, most downloaded first.

    One request to the hub's ``/api/models`` (what ``HfApi.list_models`` calls) on
    huggingface-hub's session, without its retry-with-backoff: offline, that retrying kept the
    user waiting ~25 s for an answer that was already clear after the first refusal.
    """
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    params: dict[str, str | int] = {
        "search": query,
        "filter": "gguf",
        "sort": "downloads",
        "direction": -1,
        "limit": limit,
    }
    with hub_online(), hub_errors(f"search {query!r}"):
        response = get_session().get(
            f"{hub_endpoint()}/api/models",
            params=params,
            headers=build_hf_headers(token=hub_token()),
            timeout=30,
        )
        hf_raise_for_status(response)
        items = response.json()
    return [
        SearchHit(
            repo=item["id"],
            downloads=item.get("downloads"),
            likes=item.get("likes"),
            updated=(item.get("lastModified") or "")[:10] or None,
        )
        for item in items[:limit]
        if isinstance(item, dict) and "id" in item
    ]
