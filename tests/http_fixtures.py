"""A local HTTP server for tests of anything that downloads: real fixture files plus programmable faults.

Runs on 127.0.0.1 with an ephemeral port in a background thread; nothing leaves the machine.

    from tests.http_fixtures import serve_fixtures, shared_data

    with serve_fixtures() as server:
        server.add_file("/iati.xml", shared_data("iati", "dportal_foodsecurity.xml"))
        first_page = server.add_fts_pages()          # the three real FTS pages, nextLink rewritten
        server.add_flaky("/flaky", failures=2, then=b"ok")
        url = server.url("/iati.xml")
        server.hits["/iati.xml"]                      # requests seen per path (query string ignored)

or, in a test module, the ``http_server`` fixture (import it, or wrap :func:`serve_fixtures` in your own).
Routes are plain functions ``handler(request, hit)`` where ``request`` is the
:class:`http.server.BaseHTTPRequestHandler` and ``hit`` counts requests to that path from 1, so a test
can add its own behaviour with :meth:`FixtureServer.add`.
"""

from __future__ import annotations

import gzip as gzip_module
import io
import json
import mimetypes
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FTS_PAGE_FILES = (
    "custom-search-locationid-1-year-2020.json",
    "custom-search-locationid-1-year-2020-page-2.json",
    "custom-search-locationid-1-year-2020-page-3.json",
)

Handler = Callable[[BaseHTTPRequestHandler, int], None]


def shared_data(*parts: str) -> Path:
    """A real file from ../shared/data; fails (never skips) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"shared data file missing: {path} (tests read real files from ../shared/data)")
    return path


def fts_page_paths() -> list[Path]:
    """The three real FTS flow pages (Afghanistan 2020: 200 + 200 + 84 flows), in page order."""
    return [shared_data("ocha_fts", name) for name in FTS_PAGE_FILES]


# --- response helpers usable from custom handlers -----------------------------------------------------


def send_body(
    request: BaseHTTPRequestHandler,
    body: bytes,
    *,
    status: int = 200,
    content_type: str = "application/octet-stream",
    headers: Mapping[str, str] | None = None,
    gzip: bool = False,
) -> None:
    """A complete response with Content-Length (gzip: Content-Encoding gzip, compressed length)."""
    if gzip:
        body = gzip_module.compress(body)
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    if gzip:
        request.send_header("Content-Encoding", "gzip")
    extra = dict(headers or {})
    if not any(k.lower() == "content-length" for k in extra):
        request.send_header("Content-Length", str(len(body)))
    for key, value in extra.items():
        request.send_header(key, value)
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


def reset_connection(request: BaseHTTPRequestHandler) -> None:
    """Close the socket with a TCP reset and no response at all (the client sees ECONNRESET)."""
    conn = request.connection
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.rfile.close()  # the reader holds a reference; the socket really closes only when both are gone
    conn.close()
    request.close_connection = True
    # The server still flushes these after the handler returns; give it something harmless.
    request.rfile = io.BytesIO()
    request.wfile = io.BytesIO()


# --- the server ------------------------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.fixture._dispatch(self)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fixture: FixtureServer

    def handle_error(self, request, client_address) -> None:
        # Clients that give up mid-body (size cap, timeouts) make writes fail; that is the point of the test.
        pass


class FixtureServer:
    """Routes by path (query string ignored), counts hits per path, serves until :meth:`stop`."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, full path, headers)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self._httpd.fixture = self
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes slow routes so shutdown is quick
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _dispatch(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path).path
        with self._lock:
            self.hits[path] += 1
            hit = self.hits[path]
            self.requests.append((request.command, request.path, dict(request.headers.items())))
        handler = self.routes.get(path)
        if handler is None:
            send_body(request, b"not found", status=404, content_type="text/plain")
            return
        handler(request, hit)

    # --- routes ---------------------------------------------------------------------------------

    def add(self, path: str, handler: Handler) -> str:
        """Register ``handler(request, hit)`` for ``path``; returns the full URL."""
        self.routes[path] = handler
        return self.url(path)

    def add_bytes(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
    ) -> str:
        return self.add(
            path,
            lambda req, _hit: send_body(
                req, body, status=status, content_type=content_type, headers=headers, gzip=gzip
            ),
        )

    def add_file(
        self,
        path: str,
        file: Path,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        gzip: bool = False,
    ) -> str:
        """Serve a real file's bytes unchanged (read per request, so the file itself is never copied)."""
        file = Path(file)
        kind = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return self.add(
            path,
            lambda req, _hit: send_body(req, file.read_bytes(), content_type=kind, headers=headers, gzip=gzip),
        )

    def add_fts_pages(
        self,
        prefix: str = "/fts",
        files: list[Path] | None = None,
        next_links: Mapping[int, str | None] | None = None,
    ) -> str:
        """Serve FTS flow pages at ``{prefix}/page-1``, ``-2``, ...; returns page 1's URL (with a query).

        Each page's ``meta.nextLink`` (an absolute GitHub URL in the real files) is rewritten on the fly to
        this server's URL for the page whose file name it ends with. ``next_links`` replaces the link of
        page n (1-based) with another URL, or removes it with None, for loop and error tests.
        """
        files = list(files) if files is not None else fts_page_paths()
        local = {f.name: self.url(f"{prefix}/page-{i}") for i, f in enumerate(files, start=1)}
        for number, file in enumerate(files, start=1):
            self.add(f"{prefix}/page-{number}", self._fts_page(file, local, number, next_links or {}))
        return self.url(f"{prefix}/page-1") + "?locationid=1&year=2020"

    @staticmethod
    def _fts_page(file: Path, local: dict[str, str], number: int, overrides: Mapping[int, str | None]) -> Handler:
        def handler(request: BaseHTTPRequestHandler, _hit: int) -> None:
            text = file.read_text(encoding="utf-8")
            link = (json.loads(text).get("meta") or {}).get("nextLink")
            if link:
                target = overrides[number] if number in overrides else local.get(link.rsplit("/", 1)[-1], link)
                # Replace the JSON string itself so every other byte of the real page is served unchanged.
                replacement = json.dumps(target) if target is not None else "null"
                text = text.replace(json.dumps(link), replacement, 1)
            send_body(request, text.encode("utf-8"), content_type="application/json")

        return handler

    def add_status(self, path: str, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> str:
        return self.add_bytes(path, body, status=status, content_type="text/plain", headers=headers)

    def add_flaky(
        self,
        path: str,
        failures: int,
        then: bytes | Path,
        *,
        status: int = 503,
        retry_after: str | None = None,
    ) -> str:
        """``status`` (with optional Retry-After) for the first ``failures`` requests, then 200 with ``then``."""

        def handler(request: BaseHTTPRequestHandler, hit: int) -> None:
            if hit <= failures:
                headers = {"Retry-After": retry_after} if retry_after is not None else None
                send_body(request, b"try again later", status=status, content_type="text/plain", headers=headers)
            else:
                send_body(request, then.read_bytes() if isinstance(then, Path) else then)

        return self.add(path, handler)

    def add_slow(self, path: str, delay: float, body: bytes = b"late", *, after_headers: bool = False) -> str:
        """Answer after ``delay`` seconds; with ``after_headers`` the headers and half the body come first."""

        def handler(request: BaseHTTPRequestHandler, _hit: int) -> None:
            if not after_headers:
                self.stopping.wait(delay)
                send_body(request, body)
                return
            request.send_response(200)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body[: len(body) // 2])
            request.wfile.flush()
            self.stopping.wait(delay)
            request.wfile.write(body[len(body) // 2 :])

        return self.add(path, handler)

    def add_reset(self, path: str) -> str:
        """Read the request, then reset the connection without answering."""
        return self.add(path, lambda req, _hit: reset_connection(req))

    def add_not_http(self, path: str, garbage: bytes = b"\x00\x17garbage that is not HTTP\r\n\r\n") -> str:
        """Answer with bytes that are not an HTTP response at all, then close."""

        def handler(request: BaseHTTPRequestHandler, _hit: int) -> None:
            request.wfile.write(garbage)
            request.close_connection = True

        return self.add(path, handler)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add_bytes(path, b"", status=status, content_type="text/plain", headers={"Location": location})

    def add_declared_length(self, path: str, declared: int, body: bytes = b"x") -> str:
        """Claim a Content-Length of ``declared`` bytes, send ``body``, close (for size-cap tests)."""

        def handler(request: BaseHTTPRequestHandler, _hit: int) -> None:
            send_body(request, body, headers={"Content-Length": str(declared)})
            request.close_connection = True

        return self.add(path, handler)

    def add_stream(self, path: str, total_bytes: int, chunk_bytes: int = 64 * 1024) -> str:
        """``total_bytes`` of data with chunked transfer encoding, so no Content-Length announces the size."""

        def handler(request: BaseHTTPRequestHandler, _hit: int) -> None:
            request.send_response(200)
            request.send_header("Content-Type", "application/octet-stream")
            request.send_header("Transfer-Encoding", "chunked")
            request.end_headers()
            left = total_bytes
            while left > 0 and not self.stopping.is_set():
                n = min(chunk_bytes, left)
                request.wfile.write(b"%x\r\n%s\r\n" % (n, b"a" * n))
                left -= n
            request.wfile.write(b"0\r\n\r\n")

        return self.add(path, handler)


@contextmanager
def serve_fixtures() -> Iterator[FixtureServer]:
    """A running :class:`FixtureServer`, stopped on exit."""
    server = FixtureServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    """A running fixture server; proxies are bypassed for 127.0.0.1 in case the environment sets one."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with serve_fixtures() as server:
        yield server
