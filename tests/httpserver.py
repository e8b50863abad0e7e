"""A loopback HTTP server with Range support (or without, on demand), serving a folder of real test files.

Python's http.server ignores Range headers; remote multistream reading needs them. Every request
is logged as (path, first byte, end byte sent) so tests can check what a unit fetched and count
the bytes that went over the wire. `LoopbackServer(folder, ranges=False)` behaves like a server
without Range support: it answers every GET with the whole file (200) and announces no ranges.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _RangeHandler(SimpleHTTPRequestHandler):
    log_list: list
    ranges: bool = True

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = Path(self.translate_path(self.path))
        if path.is_dir():  # an autoindex listing, as dumps mirrors serve for run folders
            super().do_GET()
            return
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", "")) if self.ranges else None
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            start, end, body = 0, len(data) - 1, data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        sent = 0
        try:
            for at in range(0, len(body), 1 << 16):  # count what went out before a client hung up
                self.wfile.write(body[at : at + (1 << 16)])
                sent = min(at + (1 << 16), len(body))
        finally:
            self.log_list.append((self.path, start, start + sent))

    def do_HEAD(self):  # noqa: N802
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        if self.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


class LoopbackServer:
    """`with LoopbackServer(folder) as server:` → `server.url(name)`, `server.requests`, `server.sent(name)`."""

    def __init__(self, folder: Path, ranges: bool = True):
        self.requests: list[tuple[str, int, int]] = []
        handler = type("Handler", (_RangeHandler,), {"log_list": self.requests, "ranges": ranges})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def sent(self, name: str) -> int:
        """Bytes of file `name` sent so far, over all requests."""
        return sum(end - start for path, start, end in self.requests if path.rsplit("/", 1)[-1] == name)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
