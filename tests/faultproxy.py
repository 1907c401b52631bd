"""A small HTTP proxy in front of a real S3 server, for tests: it counts requests (by S3
operation) and bytes, can delay them, and injects faults — 503 SlowDown answers, connections
reset mid-body, bodies corrupted in flight (a flipped byte, so Content-MD5 no longer
matches), and wrong-region answers. It forwards the Host header untouched, so SigV4
signatures stay valid."""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

INVALID = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code>"
           b"<Message>Unsupported header.</Message></Error>")
WRONG_REGION = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
                b"<Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
                b"malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
                b"<Region>eu-west-1</Region></Error>")
SLOW_DOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>"
            b"<Message>We encountered an internal error, please try again.</Message></Error>")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    size: int
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    @property
    def operation(self) -> str:
        q = self.query
        if self.method == "PUT" and "partNumber" in q:
            return "UploadPart"
        if self.method == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if self.method == "POST" and "uploadId" in q:
            return "CompleteMultipartUpload"
        if self.method == "GET" and "uploadId" in q:
            return "ListParts"
        if self.method == "DELETE" and "uploadId" in q:
            return "AbortMultipartUpload"
        if self.method == "PUT":
            return "PutObject"
        return f"{self.method}"

    @property
    def part(self) -> int | None:
        return int(self.query["partNumber"][0]) if "partNumber" in self.query else None


#: Decides what happens to a request: "pass", "slowdown", "internal" (500 InternalError, never
#: forwarded: a store failing requests, e.g. out of space), "reset", "truncate" (the answer's
#: headers and half its body, then a reset), "corrupt", "accept" (a
#: 200 answer with an ETag, never forwarded: a store that takes a body without checking it) or
#: "invalid" (400 InvalidArgument, never forwarded: a store that does not know the request).
Decide = Callable[[Request], str]


@dataclass
class FaultProxy:
    upstream: str
    decide: Decide = lambda r: "pass"
    delay_s: dict[str, float] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: list[tuple[str, int, bytes]] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)
    tls: ssl.SSLContext | None = None  # serve https with this context

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        up = urlsplit(self.upstream)
        self._up_host, self._up_port = up.hostname or "127.0.0.1", up.port or 80

    def count(self, operation: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.operation == operation)

    def parts_sent(self) -> list[int]:
        with self._lock:
            return [r.part for r in self.requests if r.part is not None]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.outcomes.clear()
            self.statuses.clear()
            self.max_in_flight.clear()

    @contextmanager
    def running(self) -> Iterator[str]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, parse_qs(parts.query, True), length,
                              {k.lower(): v for k, v in self.headers.items()})
                action = proxy.decide(req)
                with proxy._lock:
                    proxy.outcomes[action] += 1
                if action == "reset":
                    self.rfile.read(length // 2)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                body = self.rfile.read(length) if length else b""
                if action in ("slowdown", "internal", "invalid", "wrong-region"):
                    status, answer = {"slowdown": (503, SLOW_DOWN), "internal": (500, INTERNAL),
                                      "invalid": (400, INVALID),
                                      "wrong-region": (400, WRONG_REGION)}[action]
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                if action == "corrupt" and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if action == "accept":
                    with proxy._lock:
                        proxy.requests.append(req)
                        proxy.statuses.append((req.operation, 200, b""))
                    self.send_response(200)
                    self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with proxy._lock:
                    proxy.requests.append(req)
                    proxy.in_flight[req.operation] += 1
                    proxy.max_in_flight[req.operation] = max(
                        proxy.max_in_flight[req.operation], proxy.in_flight[req.operation])
                try:
                    time.sleep(proxy.delay_s.get(req.operation, 0))
                    conn = http.client.HTTPConnection(proxy._up_host, proxy._up_port, timeout=60)
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        conn.putheader(name, value)
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    conn.close()
                finally:
                    with proxy._lock:
                        proxy.in_flight[req.operation] -= 1
                with proxy._lock:
                    proxy.statuses.append((req.operation, resp.status, data[:300]))
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                head_length = resp.getheader("Content-Length", "0")
                self.send_header("Content-Length",
                                 head_length if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if action == "truncate":  # half the body, then the connection is reset
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients killed mid-request (the point of these tests) are not errors

        server = Server(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            scheme = "https" if self.tls is not None else "http"
            yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
