"""The chat in a browser tab: textual-serve runs one chatapp per tab behind a small web server.

The server is locked to the user who started it. Every run makes a random access token that is
only in the printed link; opening the link turns it into a cookie (HttpOnly, SameSite=Strict)
and every later request, the websocket included, must carry it. The Host header must name the
address chatapp listens on (a web page cannot reach it through a DNS name it controls) and an
Origin header, which browsers always send on a websocket, must be that same address (a page
from another site is refused before any chatapp process starts). At most ``max_sessions`` tabs
run at once, each its own chatapp process with a model. The page loads nothing from the
network: fonts and scripts come from textual-serve's own static folder, and a Content Security
Policy keeps it that way.
"""

from __future__ import annotations

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
COOKIE_PREFIX = "chatapp_token_"
TOKEN_PARAM = "token"
DEFAULT_MAX_SESSIONS = 2


def new_token() -> str:
    """A fresh per-run access token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


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
        offered = request.query.get(TOKEN_PARAM)
        if offered is not None:
            if not access.token_matches(offered):
                return web.Response(status=403, text=refusal_text("wrong access token"))
            # The token moves into a cookie and out of the address bar.
            rest = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
            response = web.HTTPFound(request.rel_url.with_query(rest))
            response.set_cookie(
                access.cookie_name,
                access.token,
                httponly=True,
                samesite="Strict",
                secure=access.scheme == "https",
                path="/",
            )
            return response
        if not access.token_matches(request.cookies.get(access.cookie_name)):
            return web.Response(
                status=403,
                text=refusal_text(
                    "open the link `chatapp serve` printed (it carries this run's access token)"
                ),
            )
        if request.path == "/ws":
            if origin is None:
                return web.Response(
                    status=403, text=refusal_text("a websocket needs an Origin header")
                )
            if sessions() >= max_sessions:
                return web.Response(
                    status=503,
                    text=refusal_text(
                        f"{max_sessions} chat tabs are already open; close one, or start "
                        "`chatapp serve --max-sessions N`"
                    ),
                )
        return await handler(request)  # type: ignore[no-any-return]

    return check


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
            check = guard(self.access, lambda: self.open_sessions, self.max_sessions)
            app.middlewares.append(check)  # type: ignore[arg-type]
            app.on_response_prepare.append(_security_headers(self.access))
            return app

        async def handle_websocket(self, request: Any) -> Any:
            # The guard checked the cap; nothing awaits between its check and this count.
            self.open_sessions += 1
            try:
                return await super().handle_websocket(request)
            finally:
                self.open_sessions -= 1

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
