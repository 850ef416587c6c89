"""The chat in a browser tab: textual-serve runs one chatapp per tab behind a small web server."""

from __future__ import annotations


def serve_in_browser(command: str, *, host: str, port: int, public_url: str | None) -> None:
    """Serve ``command`` (this same chatapp) at http://HOST:PORT until interrupted."""
    from textual_serve.server import Server

    url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    server = Server(
        command,
        host=host,
        port=port,
        title="chatapp",
        public_url=public_url or f"http://{url_host}:{port}",
    )
    server.serve()
