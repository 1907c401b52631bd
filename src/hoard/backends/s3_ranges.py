"""Large ranged GETs of the S3 backend without botocore: each request is signed by awscrt
(SigV4 with the CRT path's credentials provider and region, unsigned payload) and sent with the
standard library's ``http.client`` over a pool of persistent connections, its body read straight
into the caller's buffer (``recv`` runs without the GIL).

A restore of large files then makes no botocore client at all (~80 ms of CPU, and ~3 ms per
request of event hooks and urllib3). awscrt's own ``S3Client`` was measured slower for these
ranges in every variant tried (bench/RESULTS.md). The rules are the botocore path's: an error
answer is translated by ``s3_errors.error_for_code`` (via ``s3_crt.error_for_response``), a
connection that cannot be made is ``Unreachable``, one that breaks or stalls (no byte for the
read timeout, per socket read as botocore's) is ``Transient``; the caller's ``RetryPolicy``
retries. https verifies the server against the configured CA bundle, else the system's store.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from hoard.backends.s3_crt import Endpoint, error_for_response
from hoard.errors import BackendError, CredentialsRejected, Transient, Unreachable

#: the most of an error answer's body that is read (its XML code and message)
ERROR_BODY_BYTES = 64 << 10
#: failures of a pooled connection the server closed while it sat idle: the request is sent
#: again at once on a new connection (not a retry: nothing reached the server)
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class RangeReader:
    """Ranged GETs of one bucket's objects; safe to call from any thread."""

    def __init__(
        self,
        endpoint: Endpoint,
        region: str,
        provider: Any,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_bundle: str | None,
        for_code: Callable[[str, int, str, str], Exception],
        user_agent: str,
        max_idle: int,
    ) -> None:
        from awscrt import auth

        self.endpoint = endpoint
        self.url = f"{endpoint.scheme}://{endpoint.host}"
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._for_code = for_code
        self._user_agent = user_agent
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._signing = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=provider,
            region=region,
            service="s3",
            use_double_uri_encode=False,
            should_normalize_uri_path=False,
            signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )
        self._tls: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            self._tls = ssl.create_default_context(cafile=ca_bundle)

    def open(self, key: str, offset: int, length: int, what: str) -> RangeBody:
        """Bytes [offset, offset + length) of ``key`` as a stream; the answer's status and
        length are checked before it is returned."""
        path = self.endpoint.path(key)
        headers = self._signed(path, f"bytes={offset}-{offset + length - 1}", what)
        for fresh in (False, True):
            conn, reused = self._take(fresh, what)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                break
            except _STALE:
                conn.close()
                if reused:
                    continue
                raise Transient(f"{what}: the connection to {self.url} was closed") from None
            except BaseException as exc:
                conn.close()
                raise self._broken(exc, what) from None
        else:  # pragma: no cover - the second attempt is on a new connection, never reused
            raise AssertionError("unreachable")
        if resp.status not in (200, 206):
            try:
                body = resp.read(ERROR_BODY_BYTES)
            except (OSError, http.client.HTTPException):
                body = b""
            conn.close()
            raise error_for_response(resp.status, body, what, self._for_code)
        sent = resp.getheader("Content-Length")
        if sent != str(length):
            conn.close()
            raise BackendError(f"{what}: asked for {length} bytes, the store sends {sent}")
        return RangeBody(self, conn, resp, length, what)

    def _signed(self, path: str, byte_range: str, what: str) -> dict[str, str]:
        from awscrt import auth, http

        request = http.HttpRequest(
            "GET",
            path,
            http.HttpHeaders(
                [
                    ("Host", self.endpoint.host),
                    ("User-Agent", self._user_agent),
                    ("Range", byte_range),
                ]
            ),
        )
        try:
            auth.aws_sign_request(request, self._signing).result()
        except Exception as exc:
            raise CredentialsRejected(f"{what}: signing the request: {exc}") from None
        return dict(request.headers)

    def _take(self, fresh: bool, what: str) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused: True), or a new one already connected."""
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        url = urlsplit(self.url)
        host, port = url.hostname or "", url.port
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(
                host, port, timeout=self.connect_timeout_s, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
        except (ssl.SSLError, ssl.CertificateError) as exc:
            conn.close()
            raise Transient(f"{what}: TLS with {self.url} failed: {exc}") from None
        except OSError as exc:
            conn.close()
            raise Unreachable(f"{what}: could not connect to {self.url}: {exc}") from None
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout_s)
        return conn, False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _broken(self, exc: BaseException, what: str) -> BaseException:
        if isinstance(exc, TimeoutError | socket.timeout):
            return Transient(f"{what}: no answer from {self.url} in {self.read_timeout_s:.0f} s")
        if isinstance(exc, OSError | http.client.HTTPException):
            return Transient(f"{what}: the connection to {self.url} broke: {exc!r}")
        return exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class RangeBody(io.RawIOBase):
    """The body of one ranged answer. Read whole, its connection goes back to the pool; closed
    before that, the connection is closed."""

    def __init__(
        self,
        reader: RangeReader,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        length: int,
        what: str,
    ) -> None:
        super().__init__()
        self._reader: RangeReader | None = reader
        self._conn = conn
        self._resp = resp
        self._left = length
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0 or self._reader is None:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) > self._left:
            view = view[: self._left]
        try:
            got = self._resp.readinto(view)
        except BaseException as exc:
            reader, self._reader = self._reader, None
            self._conn.close()
            raise reader._broken(exc, self._what) from None
        if not got:
            self.close()
            raise Transient(f"{self._what}: the store stopped sending, {self._left} bytes short")
        self._left -= got
        return got

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            if self._left == 0 and self._resp.isclosed() and not self._resp.will_close:
                reader._give(self._conn)
            else:
                self._conn.close()
        super().close()
