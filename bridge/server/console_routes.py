"""`GET /console`: the dev console's static files, and the origins that count as the bridge's own.

The console is a page served by the bridge on its own port, so its WebSocket handshake
carries an Origin such as `http://127.0.0.1:8765`. That origin, and only that, is admitted
beside `[server] allowed_origins`: the bridge's own listening port on a loopback name (or
the configured host). A page on any other origin, including one that reaches 127.0.0.1
through DNS rebinding (its Origin and Host name *its* domain), is still refused, and the
console's files are only served to requests whose Host is the bridge's own address.

The files (bridge/server/console/) are plain HTML, CSS and ES modules, with the JS SDK's
bundle committed beside them (engine_sdk/js builds it), so serving them needs no Node.
"""

from __future__ import annotations

from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
#: The console's files, by URL name; nothing outside this list is ever read.
FILES = {"index.html", "console.css", "console.js", "entity-bridge.js"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def own_hosts(listen_host: str, port: int) -> set[str]:
    """`host:port` values that name this bridge: loopback names, and the configured host."""
    names = set(LOOPBACK_NAMES)
    if listen_host not in ("0.0.0.0", "::", ""):
        names.add(f"[{listen_host}]" if ":" in listen_host else listen_host)
    return {f"{name}:{port}" for name in names}


def own_origins(listen_host: str, port: int) -> set[str]:
    """The Origin headers of the bridge's own console page."""
    return {f"http://{host}" for host in own_hosts(listen_host, port)}


def is_console_path(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def _response(status: int, reason: str, body: bytes, content_type: str, extra: list[tuple[str, str]] | None = None) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),  # the server answers one request per connection
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            *(extra or []),
        ]
    )
    return Response(status, reason, headers, body)


def console_response(request: Request, path: str, listen_host: str, port: int) -> Response:
    """The response to a GET of /console or one of its files."""
    host = request.headers.get("Host", "")
    if host not in own_hosts(listen_host, port):
        return _response(403, "Forbidden", f"the console is served to this bridge's own address only, not to Host {host}\n".encode(), "text/plain; charset=utf-8")
    if path in ("/console", "/console/"):
        name = "index.html"
    else:
        name = path[len("/console/") :]
    if name not in FILES:
        return _response(404, "Not Found", f"no console file {name!r}\n".encode(), "text/plain; charset=utf-8")
    file = CONSOLE_DIR / name
    try:
        body = file.read_bytes()
    except OSError:
        return _response(404, "Not Found", f"console file {name} is missing from this install\n".encode(), "text/plain; charset=utf-8")
    # Everything the page loads is its own: no CDN, no inline script. The AudioWorklet of the
    # microphone is a blob: module, hence script-src blob:.
    policy = (
        "default-src 'self'; script-src 'self' blob:; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob:; connect-src 'self' ws://{host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return _response(200, "OK", body, CONTENT_TYPES[file.suffix], [("Content-Security-Policy", policy)])
