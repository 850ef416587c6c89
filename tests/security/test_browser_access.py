"""``chatapp serve`` against a raw websocket and HTTP client (aiohttp, the client side of the
library textual-serve is built on): without the printed link's token, from a foreign Origin,
through a foreign host name, or beyond the session cap, the request is refused before any
chatapp process starts; the link itself gives a session. The fake backend keeps it quick."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatapp.ui.browser import BrowserAccess
from tests.security.conftest import run_chatapp
from tests.support.served_chat import Served, serve_chat

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_chat(tmp_path / "home", env={"CHATAPP_BACKEND__KIND": "fake"}) as chat:
        yield chat


async def _websocket(served: Served, url: str, headers: dict[str, str]) -> tuple[int, str]:
    """(101, first frame) for an accepted session, (status, body) for a refusal."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                message = await asyncio.wait_for(ws.receive(), 60)
                return 101, str(message.data)[:40]
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, exc.message


def websocket(served: Served, url: str | None = None, **headers: str) -> tuple[int, str]:
    """The websocket at ``url`` (default: the one a tab opened through the link uses)."""
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return asyncio.run(_websocket(served, url or served.ws_url, named))


async def _get(served: Served, path: str, headers: dict[str, str]) -> tuple[int, Any, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{served.port}{path}", headers=headers, allow_redirects=False
        ) as response,
    ):
        return response.status, response.headers, (await response.read()).decode("latin-1")


def get(served: Served, path: str, **headers: str) -> tuple[int, Any, str]:
    return asyncio.run(_get(served, path, {k.replace("_", "-"): v for k, v in headers.items()}))


def test_foreign_origin_is_refused_even_with_the_token(served: Served) -> None:
    status, _ = websocket(served, Origin="http://evil.example", Cookie=served.cookie)
    assert status == 403
    assert served.children() == [], "a chatapp process was started for a foreign page"


def test_websocket_without_the_token_is_refused(served: Served) -> None:
    bare = f"ws://127.0.0.1:{served.port}/ws?width=80&height=24"
    assert websocket(served, bare, Origin=served.origin)[0] == 403
    wrong = f"ws://127.0.0.1:{served.port}/ws/{served.token}x?width=80&height=24"
    assert websocket(served, wrong, Origin=served.origin)[0] == 403
    assert served.children() == []


def test_websocket_without_an_origin_is_refused(served: Served) -> None:
    assert websocket(served, Cookie=served.cookie)[0] == 403
    assert served.children() == []


def test_page_without_the_token_is_refused_with_a_hint(served: Served) -> None:
    status, _, body = get(served, "/")
    assert status == 403
    assert "open the link `chatapp serve` printed" in body
    status, _, body = get(served, "/?token=guessed")
    assert status == 403 and "wrong access token" in body


def test_dns_rebinding_host_is_refused(served: Served) -> None:
    """A page on attacker.example that rebinds its name to 127.0.0.1 sends that Host."""
    status, _, _ = get(served, "/", Host=f"attacker.example:{served.port}", Cookie=served.cookie)
    assert status == 421
    status, _ = websocket(
        served,
        Host=f"attacker.example:{served.port}",
        Origin=f"http://attacker.example:{served.port}",
        Cookie=served.cookie,
    )
    assert status == 421
    assert served.children() == []


def test_the_link_sets_a_strict_cookie_and_leaves_the_address_bar(served: Served) -> None:
    status, headers, _ = get(served, f"/?token={served.token}")
    # The token goes to the page's script in the fragment (never sent to a server again).
    assert status == 302 and headers["Location"] == f"/#token={served.token}"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{served.cookie};")
    assert served.token not in cookie, "the cookie (sent to every local port) holds no token"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_page_loads_nothing_from_the_network(served: Served) -> None:
    status, headers, page = get(served, "/", Cookie=served.cookie)
    assert status == 200
    addresses = set(re.findall(r"""(?:src|href)=["']([^"']+)""", page))
    addresses |= set(re.findall(r"""url\(["']?([^"')]+)""", page))
    assert addresses, "the page references its script, styles and fonts"
    assert all(a.startswith(served.origin + "/static/") for a in addresses), addresses
    assert "googleapis" not in page
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    font = get(served, "/static/fonts/RobotoMono-VariableFont_wght.ttf")
    assert font[0] == 200


def test_the_link_gives_a_session_and_the_cap_refuses_a_third(served: Served) -> None:
    async def three_tabs() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession() as session:
            url = served.ws_url
            headers = {"Origin": served.origin}
            first = await session.ws_connect(url, headers=headers)
            second = await session.ws_connect(url, headers=headers)
            try:
                results = []
                for ws in (first, second):
                    message = await asyncio.wait_for(ws.receive(), 60)
                    results.append((101, str(message.data)[:20]))
                try:
                    await session.ws_connect(url, headers=headers)
                    results.append((101, "third accepted"))
                except aiohttp.WSServerHandshakeError as exc:
                    results.append((exc.status, exc.message))
                results.append((len(served.children()), "children"))
                return results
            finally:
                await first.close()
                await second.close()

    first, second, third, children = asyncio.run(three_tabs())
    assert first[0] == 101 and second[0] == 101
    assert third[0] == 503
    assert children[0] == 2, "each accepted tab runs one chatapp; the refused one none"
    deadline = time.monotonic() + 30
    while served.children() and time.monotonic() < deadline:
        time.sleep(0.2)  # closing the tabs ends their chatapp processes
    assert served.children() == []


def test_max_sessions_below_one_is_refused(tmp_path: Path) -> None:
    run_chatapp(tmp_path, "serve", "--max-sessions", "0").assert_refused(
        2, "--max-sessions 0", "at least 1"
    )


def test_a_public_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    run = run_chatapp(tmp_path, "serve", "--public-url", "javascript:alert(1)")
    run.assert_refused(2, "--public-url", "http(s)://HOST[:PORT]")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://127.0.0.1:8001", False),  # another local server's page
        ("https://127.0.0.1:8000", False),
        ("null", False),  # sandboxed iframes and file:// pages
        ("http://127.0.0.1.evil.example:8000", False),
        ("http://evil.example", False),
    ],
)
def test_origin_rules(origin: str, allowed: bool) -> None:
    access = BrowserAccess.for_address("127.0.0.1", 8000, None, "t")
    assert access.origin_allowed(origin) is allowed
