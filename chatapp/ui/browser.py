"""The chat in a browser tab: textual-serve runs one chatapp per tab behind a small web server.

The server is locked to the user who started it. Every run makes a random access token that is
only in the printed link. A chat (the websocket) needs that token in its path, ``/ws/TOKEN``:
opening the link redirects to ``/#token=TOKEN``, and the page's script keeps the token in the
tab's ``sessionStorage`` (which belongs to this origin, port included) and out of the address
bar. No cookie can open a chat: browsers send cookies to every port of a host, so any other
local web server the user visits would receive one and could replay it from a non-browser
client with a forged Origin. The cookie the link sets (HttpOnly, SameSite=Strict) is a key
derived from the token that only serves the page, which holds no secret.

The Host header must name the address chatapp listens on (a web page cannot reach it through a
DNS name it controls) and an Origin header, which browsers always send on a websocket, must be
that same address, port included (a page from another site or another local port is refused
before any chatapp process starts). At most ``max_sessions`` tabs run at once, each its own
chatapp process with a model, and a tab's terminal is at most ``MAX_COLUMNS`` x ``MAX_ROWS``
cells whatever size it asks for. The page loads nothing from the network: fonts and scripts
come from textual-serve's own static folder, and a Content Security Policy keeps it that way.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PAGE_DIR = Path(__file__).with_name("browser_page")
COOKIE_PREFIX = "chatapp_page_"
TOKEN_PARAM = "token"
WEBSOCKET_PREFIX = "/ws/"
DEFAULT_MAX_SESSIONS = 2
MAX_COLUMNS = 1000
MAX_ROWS = 400
"""A tab's terminal size is clamped to this (a 4K screen at a small font is ~500 x 150)."""


def new_token() -> str:
    """A fresh per-run access token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def clamp_size(width: object, height: object) -> tuple[int, int]:
    """A terminal size a tab may have: 1..MAX_COLUMNS x 1..MAX_ROWS (80 x 24 for nonsense)."""

    def clamp(value: object, default: int, most: int) -> int:
        try:
            number = int(str(value))
        except ValueError:
            return default
        return max(1, min(number, most))

    return clamp(width, 80, MAX_COLUMNS), clamp(height, 24, MAX_ROWS)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (IPv4 and IPv6, bracketed or not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _netloc(host: str, port: int | None, scheme: str) -> str:
    """``host:port`` lower-cased, without the port when it is the scheme's default."""
    host = _bracketed(host.lower())
    default = 443 if scheme in ("https", "wss") else 80
    return host if port in (None, default) else f"{host}:{port}"


def _split_netloc(value: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"{scheme}://{value}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


@dataclass(frozen=True)
class BrowserAccess:
    """Who may use the served chat: the token, and the addresses the browser may call us by."""

    token: str
    port: int
    scheme: str
    hosts: frozenset[str]
    """Accepted Host values (``host[:port]``, lower-case)."""
    any_ip_host: bool
    """Bound to every interface: any IP-literal Host with our port is accepted too."""

    @classmethod
    def for_address(cls, host: str, port: int, public_url: str | None, token: str) -> BrowserAccess:
        public = urlsplit(public_url) if public_url else None
        scheme = public.scheme if public is not None and public.scheme else "http"
        bare = host.strip("[]")
        names = {_netloc(bare, port, scheme)}
        if is_loopback(bare):
            names |= {_netloc(alias, port, scheme) for alias in ("127.0.0.1", "localhost", "::1")}
        if public is not None and public.hostname:
            names.add(_netloc(public.hostname, public.port, scheme))
        wildcard = bare in ("0.0.0.0", "::", "")
        return cls(token, port, scheme, frozenset(names), wildcard)

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two chatapp servers apart.
        return f"{COOKIE_PREFIX}{self.port}"

    @property
    def page_key(self) -> str:
        """The cookie's value: it opens the page (no secret in it), never a chat."""
        return page_key(self.token)

    def page_key_matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.page_key.encode())

    def token_matches(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        split = _split_netloc(host_header, self.scheme)
        if split is None:
            return False
        hostname, port = split
        if _netloc(hostname, port, self.scheme) in self.hosts:
            return True
        return self.any_ip_host and _is_ip_literal(hostname) and port == self.port

    def origin_allowed(self, origin: str | None) -> bool:
        """An Origin of this server itself (``null`` and foreign sites are refused)."""
        if not origin:
            return False
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme != self.scheme or not parts.hostname:
            return False
        netloc = parts.netloc if port is not None else parts.hostname
        return self.host_allowed(netloc)


def page_key(token: str) -> str:
    """The page cookie's value for ``token``: derived one way, so it cannot open a chat."""
    return hmac.new(token.encode(), b"chatapp page cookie", hashlib.sha256).hexdigest()


def refusal_text(reason: str) -> str:
    return f"chatapp serve: {reason}\n"


def guard(
    access: BrowserAccess, sessions: Callable[[], int], max_sessions: int
) -> Callable[[Any, Any], Awaitable[Any]]:
    """The aiohttp middleware that refuses every request that is not from the user's tab."""
    from aiohttp import web

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if not access.host_allowed(request.headers.get("Host")):
            return web.Response(
                status=421, text=refusal_text("this server is not reachable by that host name")
            )
        origin = request.headers.get("Origin")
        if origin is not None and not access.origin_allowed(origin):
            return web.Response(
                status=403, text=refusal_text(f"requests from {origin} are not accepted")
            )
        if request.path.startswith("/static/"):
            # textual-serve's own script, styles and fonts: public files, no secret in them.
            result: web.StreamResponse = await handler(request)
            return result
        if request.path == "/ws" or request.path.startswith(WEBSOCKET_PREFIX):
            refused = _websocket_refusal(access, request, sessions(), max_sessions)
            if refused is not None:
                return refused
            return await handler(request)  # type: ignore[no-any-return]
        offered = request.query.get(TOKEN_PARAM)
        if offered is not None:
            if not access.token_matches(offered):
                return web.Response(status=403, text=refusal_text("wrong access token"))
            # The token moves out of the address bar into the tab (see the module docstring);
            # the cookie only lets this browser load the page again.
            rest = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
            target = request.rel_url.with_query(rest).with_fragment(f"{TOKEN_PARAM}={offered}")
            response = web.HTTPFound(target)
            response.set_cookie(
                access.cookie_name,
                access.page_key,
                httponly=True,
                samesite="Strict",
                secure=access.scheme == "https",
                path="/",
            )
            return response
        if not access.page_key_matches(request.cookies.get(access.cookie_name)):
            return web.Response(
                status=403,
                text=refusal_text(
                    "open the link `chatapp serve` printed (it carries this run's access token)"
                ),
            )
        return await handler(request)  # type: ignore[no-any-return]

    return check


def _websocket_refusal(
    access: BrowserAccess, request: Any, sessions: int, max_sessions: int
) -> Any | None:
    """Why this websocket may not start a chat (a response), or None when it may."""
    from aiohttp import web

    key = request.path[len(WEBSOCKET_PREFIX) :] if request.path.startswith(WEBSOCKET_PREFIX) else ""
    if not access.token_matches(key or None):
        return web.Response(
            status=403,
            text=refusal_text(
                "a chat needs this run's access token in the websocket path "
                "(open the link `chatapp serve` printed)"
            ),
        )
    if request.headers.get("Origin") is None:
        return web.Response(status=403, text=refusal_text("a websocket needs an Origin header"))
    if sessions >= max_sessions:
        return web.Response(
            status=503,
            text=refusal_text(
                f"{max_sessions} chat tabs are already open; close one, or start "
                "`chatapp serve --max-sessions N`"
            ),
        )
    return None


def _security_headers(access: BrowserAccess) -> Callable[[Any, Any], Awaitable[None]]:
    async def add(request: Any, response: Any) -> None:
        ws = "wss" if access.scheme == "https" else "ws"
        sockets = " ".join(f"{ws}://{host}" for host in sorted(access.hosts))
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; font-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {sockets}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")

    return add


def _server_class() -> type:
    from textual_serve.server import Server

    class ChatappServer(Server):  # type: ignore[misc]
        """textual-serve's server behind chatapp's access checks and session cap."""

        def __init__(
            self, command: str, *, access: BrowserAccess, max_sessions: int, **kwargs: Any
        ) -> None:
            super().__init__(command, templates_path=PAGE_DIR, **kwargs)
            self.access = access
            self.max_sessions = max_sessions
            self.open_sessions = 0

        async def _make_app(self) -> Any:
            app = await super()._make_app()
            app.router.add_get(WEBSOCKET_PREFIX + "{key}", self.handle_websocket)
            check = guard(self.access, lambda: self.open_sessions, self.max_sessions)
            app.middlewares.append(check)  # type: ignore[arg-type]
            app.on_response_prepare.append(_security_headers(self.access))
            return app

        async def handle_websocket(self, request: Any) -> Any:
            # The guard checked the cap; nothing awaits between its check and this count.
            self.open_sessions += 1
            width, height = clamp_size(
                request.query.get("width", "80"), request.query.get("height", "24")
            )
            clamped = request.clone(rel_url=request.rel_url.with_query(width=width, height=height))
            try:
                return await super().handle_websocket(clamped)
            finally:
                self.open_sessions -= 1

        async def _process_messages(self, websocket: Any, app_service: Any) -> None:
            """textual-serve's message loop, with resizes clamped and malformed messages
            ignored (a resize to 100000 x 100000 grew a tab's chatapp to gigabytes)."""
            from aiohttp import WSMsgType

            async for message in websocket:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    envelope = message.json()
                    kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
                except (ValueError, TypeError, IndexError, KeyError):
                    continue
                if kind == "stdin" and isinstance(data, str):
                    await app_service.send_bytes(data.encode("utf-8", "replace"))
                elif kind == "resize" and isinstance(data, dict):
                    width, height = clamp_size(data.get("width"), data.get("height"))
                    await app_service.set_terminal_size(width, height)
                elif kind == "ping":
                    await websocket.send_json(["pong", data])
                elif kind == "blur":
                    await app_service.blur()
                elif kind == "focus":
                    await app_service.focus()

        async def on_startup(self, app: Any) -> None:
            link = f"{self.public_url.rstrip('/')}/?{TOKEN_PARAM}={self.access.token}"
            print(f"chatapp is serving the chat at {link}", flush=True)
            print(
                f"  open that link in your browser (it carries this run's access token); "
                f"at most {self.max_sessions} tabs at once; Ctrl+C stops",
                flush=True,
            )

        def initialize_logging(self) -> None:
            super().initialize_logging()
            # The access log would print the token of the first request.
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    return ChatappServer


def serve_in_browser(
    command: str,
    *,
    host: str,
    port: int,
    public_url: str | None,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    token: str | None = None,
) -> None:
    """Serve ``command`` (this same chatapp) at http://HOST:PORT until interrupted."""
    url = public_url or f"http://{_bracketed(host)}:{port}"
    access = BrowserAccess.for_address(host, port, url, token or new_token())
    server = _server_class()(
        command,
        access=access,
        max_sessions=max_sessions,
        host=host,
        port=port,
        title="chatapp",
        public_url=url,
    )
    server.serve()
