"""The S3 backend's data path through the AWS common runtime (awscrt), for small objects.

botocore costs about 3 ms of CPU per request (event hooks, signing, urllib3); awscrt's native
``S3Client`` signs and sends the same request for about 0.4 ms (bench/spike_small_put.py). The
S3 backend sends single-request PUTs, ranged GETs (large ones through ``s3_ranges``, signed with
this path's credentials) and listings (ListObjectsV2, parsed in ``s3_listing``) through here, and
everything else (multipart, HEAD, deletes, copies, thaws) through botocore. One request is exactly
one HTTP request: the CRT's own retries are off (``RetryPolicy`` retries, as for botocore), and
its error responses are translated by the same rules as botocore's (``s3_errors.error_for_code``).

awscrt is imported only when the first request is made; if it cannot be imported, or the
configuration needs something this path does not do (a proxy, an endpoint from the AWS config
files), ``CrtPath.make`` returns None and the backend stays on botocore.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from hoard.errors import BackendError, CredentialsRejected, Transient, Unreachable

log = logging.getLogger("hoard.s3")
T = TypeVar("T")

#: files up to this size go up in one PUT through the CRT, and ranges up to this size are read
#: with one buffered GET; larger single PUTs stay on botocore, whose per-socket read timeout
#: notices a dead connection sooner; larger ranges are streamed through ``s3_ranges``
SMALL_PUT_BYTES = 8 << 20
SMALL_READ_BYTES = 8 << 20
#: the most a listing page (1,000 keys) may send
LISTING_BYTES = 64 << 20
#: a request whose body is still going up is given this long per byte on top of the read
#: timeout before it counts as stalled (64 KiB/s: a slow uplink, not a dead one)
SLOWEST_BYTES_PER_S = 64 << 10
_VIRTUAL_HOSTABLE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")
#: CRT error names meaning the endpoint could not be reached at all (botocore's
#: EndpointConnectionError / ConnectTimeoutError)
_UNREACHABLE = {
    "AWS_IO_SOCKET_CONNECTION_REFUSED",
    "AWS_IO_SOCKET_TIMEOUT",
    "AWS_IO_SOCKET_NO_ROUTE_TO_HOST",
    "AWS_IO_SOCKET_NETWORK_DOWN",
    "AWS_IO_DNS_QUERY_FAILED",
    "AWS_IO_DNS_INVALID_NAME",
    "AWS_IO_DNS_NO_ADDRESS_FOR_HOST",
    "AWS_IO_DNS_HOST_REMOVED_FROM_CACHE",
}
#: error answers the CRT reports by a name of its own, without their status or body
_ANSWERS = {
    "AWS_ERROR_S3_SLOW_DOWN": ("SlowDown", 503),
    "AWS_ERROR_S3_INTERNAL_ERROR": ("InternalError", 500),
    "AWS_ERROR_S3_REQUEST_TIME_TOO_SKEWED": ("RequestTimeTooSkewed", 403),
}
#: parts of CRT error names meaning the connection broke mid-request (botocore's
#: ConnectionClosedError, ReadTimeoutError, …): worth another attempt
_BROKEN = ("CLOSED", "RESET", "TIMEOUT", "BROKEN_PIPE", "SOCKET", "TLS", "CONNECTION", "EOF")
#: environment variables that route or redirect requests in ways only botocore honours
_BOTOCORE_ONLY_ENV = (
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)
#: AWS config file settings likewise (an endpoint there, FIPS, dual-stack, …)
_BOTOCORE_ONLY_CONFIG = (
    "endpoint_url",
    "services",
    "use_fips_endpoint",
    "use_dualstack_endpoint",
)
#: Settings of the config's ``s3 =`` section that change where botocore sends a request. The
#: AWS CLI's transfer settings (max_concurrent_requests, multipart_threshold, …) do not, and
#: addressing_style is overridden by hoard's own (--path-style), so those keep the CRT.
_BOTOCORE_ONLY_S3 = (
    "use_accelerate_endpoint",
    "use_dualstack_endpoint",
    "us_east_1_regional_endpoint",
    "use_arn_region",
)


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str  # the Host header: host[:port]
    base: str  # path before the key: "/bucket" (path style) or "" (virtual-hosted)

    def path(self, key: str) -> str:
        return f"{self.base}/{quote(key, safe='/~')}"


def endpoint_for(bucket: str, endpoint_url: str | None, region: str, path_style: bool) -> Endpoint:
    """Where requests for ``bucket`` go, as botocore sends them with addressing style "auto"
    (or "path"): a custom endpoint is addressed path-style; AWS virtual-hosted unless path style
    is asked for or the bucket name is not a DNS label (dots included). us-east-1 uses the
    global endpoint, as botocore does by default."""
    if endpoint_url:
        url = urlsplit(endpoint_url)
        return Endpoint(
            url.scheme or "https", url.netloc, f"{url.path.rstrip('/')}/{quote(bucket)}"
        )
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    host = f"s3.{suffix}" if region == "us-east-1" else f"s3.{region}.{suffix}"
    if path_style or not _VIRTUAL_HOSTABLE.fullmatch(bucket):
        return Endpoint("https", host, f"/{quote(bucket)}")
    return Endpoint("https", f"{bucket}.{host}", "")


def configured_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint botocore would use: the option, else $AWS_ENDPOINT_URL_S3, else
    $AWS_ENDPOINT_URL (unless $AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true)."""
    if endpoint_url or os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return endpoint_url
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def needs_botocore(scoped_config: Mapping[str, Any], endpoint_url: str | None) -> str | None:
    """Why this configuration must stay on botocore, or None. ``endpoint_url``: the endpoint
    from the option or the environment (``configured_endpoint``)."""
    for name in _BOTOCORE_ONLY_ENV:
        if os.environ.get(name) and (endpoint_url is None or "PROXY" in name.upper()):
            return f"${name} is set"
    for name in _BOTOCORE_ONLY_CONFIG:
        if name in scoped_config and (endpoint_url is None or name != "endpoint_url"):
            return f"the AWS config sets {name}"
    if (
        "ignore_configured_endpoint_urls" in scoped_config
        and "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" not in os.environ
    ):  # botocore may then ignore $AWS_ENDPOINT_URL…, which configured_endpoint would follow
        return "the AWS config sets ignore_configured_endpoint_urls"
    s3 = scoped_config.get("s3")
    for name in _BOTOCORE_ONLY_S3:
        if isinstance(s3, Mapping) and name in s3:
            return f"the AWS config's s3 section sets {name}"
    return None


def error_for_response(
    status: int, body: bytes | None, what: str, for_code: Callable[[str, int, str, str], Exception]
) -> Exception:
    """An S3 error response (status and XML body) as hoard's error, via botocore's rules."""
    code = message = ""
    if body:
        if m := _CODE.search(body):
            code = m.group(1).decode("utf-8", "replace")
        if m := _MESSAGE.search(body):
            message = m.group(1).decode("utf-8", "replace")
    if not code and status in (403, 404, 412):
        code = str(status)  # botocore does the same for bodiless answers
    return for_code(code, status, message, what)


def error_for_crt(
    exc: BaseException,
    what: str,
    url: str,
    for_code: Callable[[str, int, str, str], Exception],
) -> Exception:
    """A failed CRT request as hoard's error."""
    from awscrt.exceptions import AwsCrtError
    from awscrt.s3 import S3ResponseError

    if isinstance(exc, S3ResponseError) and exc.status_code:
        return error_for_response(int(exc.status_code), exc.body, what, for_code)
    if isinstance(exc, AwsCrtError):
        if exc.name in _ANSWERS:
            code, status = _ANSWERS[exc.name]
            return for_code(code, status, f"{exc.message} ({exc.name})", what)
        if exc.name in _UNREACHABLE:
            return Unreachable(f"{what}: could not connect to {url}: {exc.message} ({exc.name})")
        if exc.name.startswith("AWS_AUTH") or "CREDENTIALS" in exc.name:
            return CredentialsRejected(f"{what}: {exc.message} ({exc.name})")
        if any(part in exc.name for part in _BROKEN):
            return Transient(f"{what}: {exc.message} ({exc.name})")
        return BackendError(f"{what}: {exc.message} ({exc.name})")
    if isinstance(exc, BackendError):
        return exc
    return BackendError(f"{what}: {exc}")


_SHARED_LOCK = threading.Lock()
_SHARED: list[Any] = []  # the process-wide ClientBootstrap, once made
#: the CRT threads whose Python thread state is kept (``_keep_thread_state``), at most
#: KEEP_STATES_AT_MOST: each S3 client adds a thread or two of its own, which end with it
#: (leaving their kept state behind, ~20 KiB each), so a long-running process that makes
#: many clients stops keeping states once it has kept that many
_KEPT: set[int] = set()
KEEP_STATES_AT_MOST = 16


def _bootstrap(crt_io: Any) -> Any:
    """One event loop group (and its bootstrap) for every CRT client of the process: its
    threads outlive a client, so the thread states they keep are made once per process."""
    with _SHARED_LOCK:
        if not _SHARED:
            elg = crt_io.EventLoopGroup(min(2, os.cpu_count() or 1))
            _SHARED.append(crt_io.ClientBootstrap(elg, crt_io.DefaultHostResolver(elg)))
        return _SHARED[0]


def _keep_thread_state() -> None:
    """Keep the Python thread state of the CRT thread this callback runs on.

    Each time a CRT thread calls into Python (a request's headers, its body read, its finish
    and its shutdown: four times per request), CPython makes a thread state for it, with a
    16 KiB frame stack mapped for it, and frees both when the call returns. One
    ``PyGILState_Ensure`` that is never released keeps the state for the thread's life (the
    GIL is still released after each call). Measured for 2,000 PUTs of 4 KiB from 8 threads
    (awscrt alone, 12 interleaved runs): 0.60 s of CPU without, 0.48 s with. Most of the
    threads are the shared event loop's, so few states are kept (``KEEP_STATES_AT_MOST``)."""
    ident = threading.get_ident()
    with _SHARED_LOCK:
        if ident in _KEPT or len(_KEPT) >= KEEP_STATES_AT_MOST:
            return
        _KEPT.add(ident)
    if sys.implementation.name == "cpython":
        import ctypes

        ctypes.pythonapi.PyGILState_Ensure()


class _Body(io.BytesIO):
    """A request body; the CRT reads it on its own threads."""

    def readinto1(self, buffer: Any) -> int:
        if threading.get_ident() not in _KEPT:
            _keep_thread_state()
        return super().readinto1(buffer)


class _Call:
    """One request in flight: collects headers and body, records when bytes last moved."""

    def __init__(self, limit: int | None) -> None:
        self.status = 0
        self.headers: Sequence[tuple[str, str]] = ()  # as received: most are never looked at
        self.chunks: list[bytes] = []
        self.received = 0
        self.limit = limit
        self.activity = time.monotonic()
        self.stalled_s = 0.0  # set when the request was cancelled as stalled

    def on_headers(self, status_code: int, headers: Sequence[tuple[str, str]], **_: Any) -> None:
        if threading.get_ident() not in _KEPT:
            _keep_thread_state()
        self.status = status_code
        self.headers = headers
        self.activity = time.monotonic()

    def header(self, name: str) -> str:
        """The value of the header ``name`` (lower case), or ""."""
        return next((v for k, v in self.headers if k.lower() == name), "")

    def on_body(self, chunk: Any, offset: int, **_: Any) -> None:
        data = bytes(chunk)
        self.received += len(data)
        if self.limit is not None and self.received > self.limit:
            raise BackendError(f"the store sent more than the {self.limit} bytes asked for")
        self.chunks.append(data)
        self.activity = time.monotonic()


def _etag(call: _Call) -> str:
    return call.header("etag").strip('"')


def _body(call: _Call) -> bytes:
    return b"".join(call.chunks)


class _Stalls:
    """Requests started without a thread waiting for them (``CrtPath.start_put`` and
    ``start_get``), watched by one thread of its own: a request with no bytes moving for
    longer than its allowance is cancelled, as ``CrtPath._wait`` does for the requests it
    waits for."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[_Call, Any, float]] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def watch(self, call: _Call, meta: Any, allowance: float) -> None:
        """Never raises: the request is already on its way."""
        with self._lock:
            self._calls[id(call)] = (call, meta, allowance)
            if self._thread is None and not self._closed.is_set():
                thread = threading.Thread(target=self._run, name="hoard-crt-watch", daemon=True)
                try:
                    thread.start()
                    self._thread = thread
                except RuntimeError as exc:  # no thread to be had: the next request tries again
                    log.warning("cannot watch requests for stalls: %s", exc)

    def forget(self, call: _Call) -> None:
        with self._lock:
            self._calls.pop(id(call), None)

    def _run(self) -> None:
        while not self._closed.wait(self.period_s):
            now = time.monotonic()
            with self._lock:
                stalled = [
                    (call, meta)
                    for call, meta, allowance in self._calls.values()
                    if not call.stalled_s and now - call.activity >= allowance
                ]
                for call, _ in stalled:
                    call.stalled_s = now - call.activity
            for _, meta in stalled:  # outside the lock: the cancelled request finishes
                try:
                    meta.cancel()
                except Exception as exc:  # keep watching the others
                    log.warning("cancelling a stalled request failed: %s", exc)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()


class CrtPath:
    """A shared awscrt ``S3Client`` for one bucket; safe to call from any thread (each call
    blocks its thread on the CRT's future, which waits without the GIL; ``start_put`` and
    ``start_get`` do not wait)."""

    def __init__(
        self,
        endpoint: Endpoint,
        region: str,
        credentials: Any,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_connections: int,
        ca_bundle: str | None,
        for_code: Callable[[str, int, str, str], Exception],
        user_agent: str,
    ) -> None:
        from awscrt import auth, s3
        from awscrt import io as crt_io

        self.endpoint = endpoint
        self.url = f"{endpoint.scheme}://{endpoint.host}"
        self.region = region
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.ca_bundle = ca_bundle
        self.max_connections = max_connections
        self._for_code = for_code
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self.requests = 0  # requests sent through the CRT (tests check the path is used)
        bootstrap = _bootstrap(crt_io)
        provider = self.provider = _provider(auth, credentials)
        self._ranges: Any = None  # s3_ranges.RangeReader, made on the first large read
        self._stalls = _Stalls(max(0.05, min(1.0, read_timeout_s / 4)))
        tls_mode = s3.S3RequestTlsMode.ENABLED
        tls_options = None
        if endpoint.scheme == "http":
            tls_mode = s3.S3RequestTlsMode.DISABLED
        elif ca_bundle:
            opts = crt_io.TlsContextOptions()
            opts.override_default_trust_store_from_path(ca_filepath=ca_bundle)
            tls_options = crt_io.ClientTlsContext(opts).new_connection_options()
            tls_options.set_server_name(urlsplit(self.url).hostname or "")
        self._client: Any = s3.S3Client(
            bootstrap=bootstrap,
            region=region,
            signing_config=s3.create_default_s3_signing_config(
                region=region, credential_provider=provider
            ),
            tls_mode=tls_mode,
            tls_connection_options=tls_options,
            max_active_connections_override=max_connections,
            retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
            connect_timeout_ms=max(1, int(connect_timeout_s * 1000)),
        )

    def put(self, key: str, data: bytes, headers: Sequence[tuple[str, str]], what: str) -> str:
        """One PutObject; returns the ETag without quotes."""
        head = [*headers, ("Content-Length", str(len(data)))]
        return _etag(self._send("PUT", key, head, what, body=data, limit=1 << 20))

    def start_put(
        self,
        key: str,
        data: bytes,
        headers: Sequence[tuple[str, str]],
        what: str,
        done: Callable[[str, Exception | None], None],
    ) -> None:
        """One PutObject, without waiting for it: ``done(etag, None)`` or ``done("", error)``
        is called once, on one of the CRT's threads (so it must not block). A request with no
        bytes moving for as long as ``put`` would wait is cancelled: a ``Transient`` error.
        Raises (and ``done`` is never called) if the request cannot be started.

        No thread of ours waits for the request: the CRT's own call into Python when it
        finishes is the only hand-off, where ``put`` adds a blocked thread's wake-up (the
        12-03 spike: 0.21 against 0.38-0.61 ms of CPU per 4 KiB PUT)."""
        head = [*headers, ("Content-Length", str(len(data)))]
        allowance = self.read_timeout_s + len(data) / SLOWEST_BYTES_PER_S
        self._start_unwaited("PUT", key, head, _Call(1 << 20), data, allowance, what, done, _etag)

    def start_get(
        self,
        key: str,
        range_header: str,
        length: int,
        what: str,
        done: Callable[[bytes, Exception | None], None],
    ) -> None:
        """``get``, without waiting for it, as ``start_put``: ``done(data, None)`` or
        ``done(b"", error)`` once, on one of the CRT's threads (``S3Backend.start_get`` hands
        on None for the bytes of a failed read)."""
        head = [("Range", range_header)]
        call = _Call(length)
        self._start_unwaited("GET", key, head, call, None, self.read_timeout_s, what, done, _body)

    def _start_unwaited(
        self,
        method: str,
        key: str,
        headers: Sequence[tuple[str, str]],
        call: _Call,
        body: bytes | None,
        allowance: float,
        what: str,
        done: Callable[[T, Exception | None], None],
        answer: Callable[[_Call], T],
    ) -> None:
        """Start a request no thread waits for; when it ends, ``done(answer(call), None)``, or
        ``done(answer of nothing, error)``, on the CRT's thread. Watched for stalls."""
        meta = self._start(method, key, headers, call, body=body)
        self._stalls.watch(call, meta, allowance)

        def finished(future: Any) -> None:
            self._stalls.forget(call)
            exc = future.exception()
            if exc is None:
                done(answer(call), None)
                return
            exc.__traceback__ = None  # the future keeps it; its frames would keep the request
            error: Exception
            if call.stalled_s:
                error = Transient(f"{what}: no answer from {self.url} in {call.stalled_s:.0f} s")
            else:
                try:
                    error = error_for_crt(exc, what, self.url, self._for_code)
                except Exception as bug:  # done must still be called
                    error = BackendError(f"{what}: {exc!r} ({bug!r})")
            done(answer(_Call(0)), error)

        meta.finished_future.add_done_callback(finished)

    def get(self, key: str, range_header: str, length: int, what: str) -> bytes:
        """One GetObject of a byte range, read whole into memory (``length`` is small)."""
        return _body(self._send("GET", key, [("Range", range_header)], what, limit=length))

    def open_range(self, key: str, offset: int, length: int, what: str) -> Any:
        """One GetObject of a large byte range, as a stream (``s3_ranges``: http.client, signed
        with this path's credentials and region)."""
        ranges = self._ranges
        if ranges is None:
            from hoard.backends.s3_ranges import RangeReader

            with self._lock:
                if self._client is None:
                    raise BackendError(f"{what}: the connection to the store is closed")
                if self._ranges is None:
                    self._ranges = RangeReader(
                        self.endpoint,
                        self.region,
                        self.provider,
                        connect_timeout_s=self.connect_timeout_s,
                        read_timeout_s=self.read_timeout_s,
                        ca_bundle=self.ca_bundle,
                        for_code=self._for_code,
                        user_agent=self._user_agent,
                        max_idle=2 * self.max_connections,
                    )
                ranges = self._ranges
        with self._lock:
            self.requests += 1
        return ranges.open(key, offset, length, what)

    def list_objects(self, query: str, what: str) -> bytes:
        """One ListObjectsV2 of the bucket (``query``: its query string); the XML answer."""
        path = f"{self.endpoint.base or '/'}?{query}"
        return _body(self._send("GET", "", [], what, path=path, limit=LISTING_BYTES))

    def _send(
        self,
        method: str,
        key: str,
        headers: Sequence[tuple[str, str]],
        what: str,
        *,
        body: bytes | None = None,
        limit: int | None = None,
        path: str | None = None,
    ) -> _Call:
        if self._client is None:
            raise BackendError(f"{what}: the connection to the store is closed")
        call = _Call(limit)
        allowance = self.read_timeout_s + (len(body) if body else 0) / SLOWEST_BYTES_PER_S
        try:
            meta = self._start(method, key, headers, call, body=body, path=path)
            failure = self._wait(meta, call, allowance, what)
        except Exception as exc:
            failure = error_for_crt(exc, what, self.url, self._for_code)
        # raised outside the handler, with no CRT object left in this frame: an error kept by
        # the caller must not keep the client (and its connections) alive after close()
        meta = None
        if failure is not None:
            raise failure
        return call

    def _start(
        self,
        method: str,
        key: str,
        headers: Sequence[tuple[str, str]],
        call: _Call,
        *,
        body: bytes | None = None,
        path: str | None = None,
    ) -> Any:
        """Start one request; its ``S3Request`` (whose ``finished_future`` says how it ended)."""
        from awscrt import http, s3

        client = self._client
        if client is None:
            raise BackendError("the connection to the store is closed")
        all_headers = [("Host", self.endpoint.host), ("User-Agent", self._user_agent), *headers]
        request = http.HttpRequest(
            method,
            path or self.endpoint.path(key),
            http.HttpHeaders(all_headers),
            _Body(body) if body is not None else None,
        )
        with self._lock:
            self.requests += 1
        return client.make_request(
            type=s3.S3RequestType.DEFAULT,
            operation_name=(
                "PutObject" if method == "PUT" else "ListObjectsV2" if path else "GetObject"
            ),
            request=request,
            on_headers=call.on_headers,
            on_body=call.on_body,
        )

    def _wait(self, meta: Any, call: _Call, allowance: float, what: str) -> Exception | None:
        """Wait for the request; None when it succeeded, else the error. A request with no
        bytes moving for ``allowance`` seconds is cancelled as stalled."""
        future = meta.finished_future
        while True:
            idle = time.monotonic() - call.activity
            if idle >= allowance:
                meta.cancel()
                return Transient(f"{what}: no answer from {self.url} in {idle:.0f} s")
            try:
                future.result(timeout=allowance - idle)
                return None
            except TimeoutError:
                continue
            except Exception as exc:
                exc.__traceback__ = None  # the future keeps it; its frames would keep meta
                return error_for_crt(exc, what, self.url, self._for_code)

    def close(self) -> None:
        with self._lock:
            ranges, self._ranges = self._ranges, None
        if ranges is not None:
            ranges.close()
        client, self._client = self._client, None
        self._stalls.close()  # after: no request starts that it would not watch
        if client is not None:
            done = client.shutdown_event
            del client
            done.wait(1)  # the CRT closes its connections on its own threads


def make_path(
    session: Any,
    *,
    bucket: str,
    endpoint_url: str | None,
    region: str,
    path_style: bool,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    for_code: Callable[[str, int, str, str], Exception],
) -> CrtPath | None:
    """The CRT data path for a bucket, from the botocore ``session`` (credentials, CA bundle,
    config) or ``s3_env.EnvSession``; None where it cannot be used, said in the log at debug
    level."""
    from hoard import __version__

    try:
        import awscrt
    except ImportError as exc:
        log.debug("awscrt cannot be imported (%s): all S3 requests go through botocore", exc)
        return None
    endpoint_url = configured_endpoint(endpoint_url)
    why = needs_botocore(session.get_scoped_config(), endpoint_url)
    if why:
        log.info("%s: all S3 requests go through botocore", why)
        return None
    credentials = session.get_credentials()
    if credentials is None:
        raise CredentialsRejected("Unable to locate credentials")
    endpoint = endpoint_for(bucket, endpoint_url, region, path_style)
    try:
        path = CrtPath(
            endpoint,
            region,
            credentials,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_connections=max_connections,
            ca_bundle=session.get_config_variable("ca_bundle"),
            for_code=for_code,
            user_agent=f"hoard/{__version__} awscrt/{awscrt.__version__}",
        )
    except Exception as exc:  # e.g. a CA bundle the CRT cannot load
        log.debug("awscrt's S3 client cannot be made (%s): all requests go through botocore", exc)
        return None
    log.debug(
        "small objects go through awscrt %s at %s%s", awscrt.__version__, path.url, endpoint.base
    )
    return path


def _provider(auth: Any, credentials: Any) -> Any:
    """A CRT credentials provider over botocore's credentials (the same chain as the botocore
    path: --profile, environment, config files, SSO, instance roles), or over the environment's
    (``s3_env``). Credentials that can expire are asked for on every signing, so botocore
    refreshes them as it would."""
    from hoard.backends.s3_env import EnvCredentials

    if isinstance(credentials, EnvCredentials) or _static_botocore(credentials):
        c = credentials.get_frozen_credentials()
        return auth.AwsCredentialsProvider.new_static(c.access_key, c.secret_key, c.token)

    def current() -> Any:
        c = credentials.get_frozen_credentials()
        return auth.AwsCredentials(c.access_key, c.secret_key, c.token)

    return auth.AwsCredentialsProvider.new_delegate(current)


def _static_botocore(credentials: Any) -> bool:
    from botocore.credentials import Credentials

    return type(credentials) is Credentials
