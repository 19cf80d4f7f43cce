"""The labelling page's HTTP layer: the standard library's ``ThreadingHTTPServer`` and one static page.

Why this stack: the page is one HTML file with its script and style (``static/``), served as package data, so there
is no build step and nothing is fetched from the internet at run time (coders often work on machines without it,
and the page never shows faces to a third party). The standard library's server needs no dependency and is enough
for one person labelling on their own machine.

Safety: the server binds 127.0.0.1 only, and each request is refused (403) unless it comes from a loopback
address *and* names this server in its ``Host`` header (``127.0.0.1``, ``localhost`` or ``[::1]`` with this port:
a web page elsewhere cannot reach it through DNS rebinding). Answers are only accepted as ``application/json``
POSTs (a plain HTML form on another site cannot send them) whose ``Origin``, when present, is this server. The only
file the server writes is the manifest it was started with (:meth:`LabelSession.answer`); no request names a path.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from auspread.errors import DataError
from auspread.labelling.session import LabelSession

HOST = "127.0.0.1"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
MAX_BODY = 64 * 1024


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, port: int) -> bool:
    """``Host`` must name this server: 127.0.0.1, localhost or [::1], with its port."""
    if not host:
        return False
    host = host.strip().lower()
    for name in ("127.0.0.1", "localhost", "[::1]"):
        if host == f"{name}:{port}":
            return True
    return False


def origin_allowed(origin: str | None, port: int) -> bool:
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == "http" and host_allowed(parts.netloc, port)


class _Handler(BaseHTTPRequestHandler):
    server_version = "auspread-label"
    session: LabelSession  # set on the subclass made by make_server

    def log_message(self, fmt, *args):  # quiet: the terminal shows the CLI's own lines
        pass

    def _refuse(self) -> bool:
        port = self.server.server_address[1]
        if not is_loopback(self.client_address[0]) or not host_allowed(self.headers.get("Host"), port):
            self._send(HTTPStatus.FORBIDDEN, {"error": "the labelling page answers only http://127.0.0.1 (loopback)"})
            return True
        return False

    def _send(self, status: int, body, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self._refuse():
            return
        url = urlsplit(self.path)
        if url.path in STATIC:
            name, ctype = STATIC[url.path]
            data = resources.files("auspread.labelling").joinpath(f"static/{name}").read_bytes()
            return self._send(HTTPStatus.OK, data, ctype)
        if url.path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if url.path == "/api/state":
            return self._send(HTTPStatus.OK, self.session.state())
        if url.path == "/api/frame":
            try:
                k = int(parse_qs(url.query)["k"][0])
            except (KeyError, ValueError, IndexError):
                return self._send(HTTPStatus.BAD_REQUEST, {"error": "expected /api/frame?k=<frame number>"})
            out = self.session.frame(k)
            return self._send(HTTPStatus.UNPROCESSABLE_ENTITY if "error" in out else HTTPStatus.OK, out)
        self._send(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self):  # noqa: N802
        if self._refuse():
            return
        port = self.server.server_address[1]
        if urlsplit(self.path).path != "/api/answer":
            return self._send(HTTPStatus.NOT_FOUND, {"error": "answers go to /api/answer"})
        if not origin_allowed(self.headers.get("Origin"), port):
            return self._send(HTTPStatus.FORBIDDEN, {"error": "answers are only taken from this page"})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._send(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON (application/json)"})
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 < n <= MAX_BODY:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": "missing or oversized body"})
        try:
            body = json.loads(self.rfile.read(n))
            if not isinstance(body, dict) or set(body) != {"k", "values"}:
                raise ValueError('expected {"k": <frame>, "values": {AU: 1, 0 or null}}')
            out = self.session.answer(body["k"], body["values"])
        except (ValueError, KeyError) as e:  # JSONDecodeError is a ValueError
            return self._send(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except DataError as e:  # the manifest changed on disk under the page
            return self._send(HTTPStatus.CONFLICT, {"error": str(e)})
        except OSError as e:
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR,
                              {"error": f"could not write {self.session.manifest.path}: {e}"})
        self._send(HTTPStatus.OK, out)


def make_server(session: LabelSession, port: int = 0) -> ThreadingHTTPServer:
    """A server for ``session`` on 127.0.0.1:``port`` (0: a free port), not yet serving."""
    handler = type("LabelHandler", (_Handler,), {"session": session})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(session: LabelSession, port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = make_server(session, port)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return server, t
