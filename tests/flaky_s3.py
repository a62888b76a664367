"""A fault-injecting HTTP proxy in front of the S3 test server (moto), on 127.0.0.1.

Each request is passed on to the server, or, for a share ``rate`` of them (chosen by a seeded
generator), answered with a fault, the kinds in turn: ``503 SlowDown``, ``500
InternalError``, a reset connection (RST, no answer), and a stalled read (the status, the
headers and half the body of the real answer, then nothing for ``stall`` seconds). Bounded:
one thread per connection, every request read whole, at most ``stall`` seconds held.

Usage::

    with FlakyProxy("http://127.0.0.1:PORT", rate=0.1) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.url
"""

from __future__ import annotations

import http.client
import itertools
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

KINDS = ("503", "500", "reset", "stall")
_XML = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
        "<Message>{message}</Message></Error>")


class FlakyProxy:
    """The proxy server; a context manager that starts and stops it."""

    def __init__(self, upstream: str, *, rate: float, seed: int = 0, stall: float = 4.0):
        target = urlparse(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.rate, self.stall = rate, stall
        self.random = random.Random(seed)
        self.kinds = itertools.cycle(KINDS)
        self.lock = threading.Lock()
        self.counts = {"requests": 0, **{k: 0 for k in KINDS}}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fault(self) -> str | None:
        """The fault for the next request, or None to pass it on."""
        with self.lock:
            self.counts["requests"] += 1
            if self.random.random() >= self.rate:
                return None
            kind = next(self.kinds)
            self.counts[kind] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                body = self._body()
                kind = proxy.fault()
                if kind in ("503", "500"):
                    code, name = (503, "SlowDown") if kind == "503" else (500, "InternalError")
                    self._reply(code, _XML.format(code=name, message="injected").encode())
                    return
                if kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, answer = self._forward(body)
                self.send_response_only(status)
                length = str(len(answer))
                for name, value in headers:
                    if name.lower() == "content-length":
                        length = value if self.command == "HEAD" else length
                    elif name.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", length)
                self.end_headers()
                if kind == "stall" and self.command != "HEAD":
                    self.wfile.write(answer[: len(answer) // 2])
                    self.wfile.flush()
                    time.sleep(proxy.stall)
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(answer)

            def _body(self) -> bytes:
                """The request's body as sent: ``Content-Length`` bytes, or the raw chunked
                stream (the SDK uploads parts chunked, with a trailing checksum)."""
                if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else b""
                raw = bytearray()
                while True:
                    line = self.rfile.readline()
                    raw += line
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    raw += self.rfile.read(size + 2)
                while True:  # trailers, then the empty line
                    line = self.rfile.readline()
                    raw += line
                    if line in (b"\r\n", b"\n", b""):
                        return bytes(raw)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "expect")}
                    upstream.request(self.command, self.path, body=body or None,
                                     headers=headers)
                    answer = upstream.getresponse()
                    return answer.status, answer.getheaders(), answer.read()
                finally:
                    upstream.close()

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response_only(code)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

        return Handler
