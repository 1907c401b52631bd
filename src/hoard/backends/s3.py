"""S3-compatible stores through boto3 (AWS, MinIO, R2, Wasabi, GCS's S3 API, SeaweedFS).

One botocore client shared by every thread (botocore's low-level clients are thread-safe; the
first client costs ~150 ms of CPU for the service model and endpoint rules, each further one
~4 ms, and a restore has up to 4 range threads per worker), small objects and listings through
awscrt (``s3_crt``), ranged reads above 8 MiB over http.client signed by awscrt (``s3_ranges``),
so restoring warm objects the catalog knows makes no botocore client; retries are left to
``wrappers.Retrying`` so they are the same for every backend. Every body carries a checksum the
store verifies, so it rejects a corrupted transfer instead of storing it: Content-MD5, or for
parts CRC64NVME (~30x cheaper to compute) where the store is shown to check it. Files above the
multipart threshold go up in parts (``s3_parts``), bounded in memory by one part per worker.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from botocore import exceptions as bexc

from hoard.backends import parts, s3_crt, s3_env, s3_listing, s3_parts
from hoard.backends.base import (
    Backend,
    Capabilities,
    IncompleteUpload,
    Journal,
    PutResult,
)
from hoard.backends.registry import s3_store_url
from hoard.backends.s3_errors import error_for_code, translate
from hoard.backends.wrappers import AdaptiveLimit, RetryPolicy
from hoard.errors import (
    BackendError,
    CredentialsRejected,
    HoardError,
    NotFound,
    ObjectChanged,
    SourceUnreadable,
    Transient,
    WrongRegion,
)
from hoard.model import RemoteObject

log = logging.getLogger("hoard.s3")

MiB = 1 << 20
STORAGE_CLASSES: dict[str, str] = {
    "standard": "STANDARD",
    "standard_ia": "STANDARD_IA",
    "onezone_ia": "ONEZONE_IA",
    "intelligent_tiering": "INTELLIGENT_TIERING",
    "glacier_ir": "GLACIER_IR",
    "glacier": "GLACIER",
    "deep_archive": "DEEP_ARCHIVE",
}
_TIER_OF = {v: k for k, v in STORAGE_CLASSES.items()}
COLD = ("glacier", "deep_archive")
TIER_NOTES = {
    "standard": "frequent access",
    "standard_ia": "infrequent access; 30-day minimum, per-GB retrieval fee",
    "onezone_ia": "infrequent access in one zone; 30-day minimum",
    "intelligent_tiering": "moves between access tiers automatically",
    "glacier_ir": "archive with millisecond reads; 90-day minimum",
    "glacier": "archive; must be thawed (minutes to hours) before reading; 90-day minimum",
    "deep_archive": "cheapest archive; thaw takes 12-48 hours; 180-day minimum",
}
MIN_STORAGE_DAYS = {
    "standard_ia": 30,
    "onezone_ia": 30,
    "glacier_ir": 90,
    "glacier": 90,
    "deep_archive": 180,
}
MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * MiB
CAPABILITIES = Capabilities(
    scheme="s3",
    tiers=tuple(STORAGE_CLASSES),
    default_tier="standard",
    cold_tiers=COLD,
    listing_has_metadata=False,
    multipart_threshold_bytes=64 * MiB,
    min_part_bytes=MIN_PART_BYTES,
    max_parts=MAX_PARTS,
    max_object_bytes=5 * (1 << 40),
    tier_notes=TIER_NOTES,
    min_storage_days=MIN_STORAGE_DAYS,
)


def _tier_of(storage_class: str) -> str:
    return _TIER_OF.get(storage_class, storage_class.lower())


def _unwatched(endpoint_url: str | None) -> bool:
    """Whether the endpoint (the option or $AWS_ENDPOINT_URL…) is on this machine: no one can
    alter a request on the way, so a body need not be covered by the signature (botocore
    otherwise SHA-256s every body sent over plain http, ~0.3 s of CPU per 500 MB, as a guard
    against tampering on the network); its checksum still proves it arrived intact. Elsewhere
    over plain http the signature keeps covering the body: a CRC, unlike MD5, is easily forged."""
    endpoint_url = s3_crt.configured_endpoint(endpoint_url)
    host = urlsplit(endpoint_url).hostname if endpoint_url else None
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _small_put_headers(
    data: bytes, metadata: Mapping[str, str], tier: str
) -> list[tuple[str, str]]:
    """The headers of a single-request PutObject through the CRT."""
    headers = [("Content-MD5", parts.md5_b64(data))]
    headers += [(f"x-amz-meta-{k}", v) for k, v in metadata.items()]
    headers.append(("x-amz-storage-class", STORAGE_CLASSES[tier]))
    return headers


def part_size_for(size: int, preferred: int) -> int:
    """The part size: ``preferred`` unless that needs more than 10,000 parts (whole MiB)."""
    return parts.part_size_for(size, preferred, MAX_PARTS, MIN_PART_BYTES)


class S3Backend(Backend):
    """An S3 bucket. Every request goes through ``policy`` (retries, adaptive concurrency).

    A file at least ``multipart_threshold_bytes`` big goes up in parts, ``workers`` at a time,
    with at most ``2 * workers`` parts in memory. With a journal, each stored part is recorded
    as it completes; a later put of the same key and unchanged file resumes the upload: it asks
    the store which parts it holds (ListParts), re-hashes the local bytes of each recorded part,
    and sends only what is missing or does not match.
    """

    capabilities = CAPABILITIES

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        path_style: bool = False,
        multipart_threshold_bytes: int = 64 * MiB,
        part_bytes: int = 16 * MiB,
        workers: int = 8,
        policy: RetryPolicy | None = None,
        connect_timeout_s: float = 5,
        read_timeout_s: float = 60,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.url = s3_store_url(bucket, endpoint_url)
        self.profile = profile
        self.region = region
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.part_bytes = part_bytes
        self.workers = max(1, workers)
        self.policy = policy or RetryPolicy(limit=AdaptiveLimit(2 * self.workers))
        self.path_style = path_style
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._config_args: dict[str, Any] = {
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "connect_timeout": connect_timeout_s,
            "read_timeout": read_timeout_s,
            "s3": {
                "addressing_style": "path" if path_style else "auto",
                **({"payload_signing_enabled": False} if _unwatched(endpoint_url) else {}),
            },
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "user_agent_extra": "hoard",
            # uploads keep 2 x workers requests in flight, a restore up to 4 ranges per file
            "max_pool_connections": 4 * self.workers + 4,
        }
        self._lock = threading.Lock()
        self._shared_client: Any = None
        self._session: Any = None
        self._crt_path: Any = None  # s3_crt.CrtPath once made; False: botocore only
        self._retired: list[Any] = []  # CRT paths left for botocore (_leave_crt), to close
        self._sender = parts.PartSender(self.workers)
        self._parts = s3_parts.Multipart(self)
        self.list_page_size = 1000

    def _botocore_session(self) -> tuple[Any, str]:
        """The one botocore session and the region; call with ``self._lock`` held (sessions
        are not thread-safe)."""
        from botocore.session import Session

        try:
            if self._session is None:
                self._session = Session(profile=self.profile)
            region = self.region or self._session.get_config_variable("region")
        except bexc.ProfileNotFound as exc:
            raise CredentialsRejected(str(exc)) from None
        return self._session, region or "us-east-1"

    def _client(self) -> Any:
        """The botocore client, shared by every thread. It is made from one botocore session
        (not thread-safe, hence the lock) when a request is first needed: a run with nothing
        to send never pays for importing the SDK."""
        client = self._shared_client
        if client is None:
            from botocore.config import Config

            with self._lock:
                if self._shared_client is None:
                    session, region = self._botocore_session()
                    self._shared_client = session.create_client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=region,
                        config=Config(**self._config_args),
                    )
                client = self._shared_client
        return client

    def _crt(self) -> Any:
        """The shared CRT data path (s3_crt.CrtPath), made on first use like the botocore
        clients; None where it cannot be used (then every request goes through botocore)."""
        crt = self._crt_path
        if crt is None:
            with self._lock:
                if self._crt_path is None:
                    self._crt_path = self._make_crt() or False
                crt = self._crt_path
        return crt or None

    def _make_crt(self) -> Any:
        try:
            return self._make_crt_path()
        except HoardError:
            raise
        except Exception as exc:  # e.g. a credential_process that fails: no SDK error escapes
            raise translate(exc, f"connecting to s3://{self.bucket}") from None

    def _make_crt_path(self) -> Any:
        # credentials and region from the environment where botocore would certainly take
        # them from there: no botocore session (~170 ms of CPU) before the first request
        session: Any = s3_env.from_environment(self.profile)
        if session is not None:
            region = self.region or session.region or "us-east-1"
            log.debug("credentials from the environment, region %s: no botocore session", region)
        else:
            session, region = self._botocore_session()
        return s3_crt.make_path(
            session,
            bucket=self.bucket,
            endpoint_url=self.endpoint_url,
            region=region,
            path_style=self.path_style,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_connections=2 * self.workers,
            for_code=error_for_code,
        )

    def _leave_crt(self, exc: WrongRegion) -> None:
        """Send every request through botocore from now on: the bucket is in another region
        than the one the CRT path signs for, and botocore follows it there. The CRT path may be
        in use by other threads, so it is closed with the backend."""
        with self._lock:
            if self._crt_path:
                self._retired.append(self._crt_path)
                log.info("%s; every request of this run goes through botocore", exc)
            self._crt_path = False

    @property
    def crt_requests(self) -> int:
        """Requests sent through the CRT data path so far (0 while it is not in use)."""
        crt = self._crt_path
        return int((crt.requests if crt else 0) + sum(r.requests for r in self._retired))

    def part_size_for(self, size: int) -> int:
        return part_size_for(size, self.part_bytes)

    def _call_once(self, what: str, method: str, **kwargs: Any) -> Any:
        """One attempt of a botocore call, its errors translated (``_call`` retries)."""
        try:
            return getattr(self._client(), method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise translate(exc, what) from None

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        def once() -> Any:
            try:
                return getattr(self._client(), method)(Bucket=self.bucket, **kwargs)
            except Exception as exc:
                raise translate(exc, what) from None

        return self.policy.call(what, once)

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        tier = self.capabilities.tier(tier)
        extra = {"Metadata": dict(metadata), "StorageClass": STORAGE_CLASSES[tier]}
        try:
            # unbuffered: no isatty() or tell() system calls for a file read once
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
        with fh:
            if size < self.multipart_threshold_bytes:
                data = parts.read_at_most(fh, size + 1, path)
                if size <= s3_crt.SMALL_PUT_BYTES and (crt := self._crt()):
                    headers = _small_put_headers(data, metadata, tier)
                    what = f"uploading {key}"
                    try:
                        etag = self.policy.call(what, lambda: crt.put(key, data, headers, what))
                        return PutResult(etag=etag, tier=tier)
                    except WrongRegion as exc:
                        self._leave_crt(exc)  # botocore follows the bucket to its region
                resp = self._call(
                    f"uploading {key}",
                    "put_object",
                    Key=key,
                    Body=data,
                    ContentMD5=parts.md5_b64(data),
                    **extra,
                )
                return PutResult(etag=resp.get("ETag", "").strip('"'), tier=tier)
            return self._parts.upload(key, fh.fileno(), path, size, extra, tier, journal)

    def start_put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        done: Callable[[PutResult | None, Exception | None], None],
        wait: bool = True,
    ) -> bool:
        """A file small enough for one CRT request is sent without a thread waiting for it
        (``CrtPath.start_put``), one attempt, under the policy's adaptive limit. Anything
        else (a large file, no CRT path, a file that cannot be read, a closed client) is left
        to ``put``, which says what went wrong."""
        if size > s3_crt.SMALL_PUT_BYTES or size >= self.multipart_threshold_bytes:
            return False
        try:  # a tier this store lacks: put says so
            tier = self.capabilities.tier(tier)
        except HoardError:
            return False

        def start(crt: s3_crt.CrtPath, release: Callable[[Exception | None], None]) -> None:
            def finished(etag: str, error: Exception | None) -> None:
                release(error)
                done(PutResult(etag=etag, tier=tier) if error is None else None, error)

            with open(path, "rb", buffering=0) as fh:
                data = parts.read_at_most(fh, size + 1, path)
            headers = _small_put_headers(data, metadata, tier)
            crt.start_put(key, data, headers, f"uploading {key}", finished)

        return self._start_in_slot(wait, f"uploading {key}", start)

    def start_get(
        self,
        key: str,
        size: int,
        done: Callable[[bytes | None, Exception | None], None],
        wait: bool = True,
    ) -> bool:
        """An object small enough for one CRT request is read without a thread waiting for
        it (``CrtPath.start_get``), as ``start_put``; anything else is left to ``open``."""
        if not 0 < size <= s3_crt.SMALL_READ_BYTES:
            return False

        def start(crt: s3_crt.CrtPath, release: Callable[[Exception | None], None]) -> None:
            def finished(data: bytes, error: Exception | None) -> None:
                release(error)
                done(data if error is None else None, error)

            crt.start_get(key, f"bytes=0-{size - 1}", size, f"reading {key}", finished)

        return self._start_in_slot(wait, f"reading {key}", start)

    def _start_in_slot(
        self,
        wait: bool,
        what: str,
        start: Callable[[s3_crt.CrtPath, Callable[[Exception | None], None]], None],
    ) -> bool:
        """``start(crt, release)`` holding one of the policy's request slots (``wait=False``:
        only if one is free now); the request's end calls ``release(error)``, which gives it
        back (a Transient error counts as throttling). False where there is no CRT path (or
        no credentials: the waiting path says so, and stops the run), and where ``start``
        raised, with the slot given back: the request was not sent."""
        try:
            crt = self._crt() if wait else self._crt_path
        except HoardError:
            return False
        if not crt:
            return False
        limit = self.policy.limit
        if limit is not None:
            if wait:
                limit.acquire()
            elif not limit.try_acquire():
                return False

        slot = [limit] if limit is not None else []

        def release(error: Exception | None) -> None:
            # once: a Ctrl-C just after the request went out gives the slot back below, and
            # then the request's end must not give it back again (list.pop is atomic)
            with contextlib.suppress(IndexError):
                slot.pop().release(throttled=isinstance(error, Transient))

        try:
            start(crt, release)
        except Exception as exc:  # not started: the slot goes back; the waiting path says why
            release(None)
            log.debug("%s: not started through the CRT (%s)", what, exc)
            return False
        except BaseException:
            release(None)
            raise
        return True

    def incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]:
        markers: dict[str, str] = {}
        while True:
            page = self._call(
                f"listing unfinished uploads under {prefix!r}",
                "list_multipart_uploads",
                Prefix=prefix,
                **markers,
            )
            for u in page.get("Uploads", []):
                yield IncompleteUpload(
                    u["Key"], u["UploadId"], int(u["Initiated"].timestamp() * 1e9)
                )
            if not page.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    def abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(
                f"aborting upload of {key}", "abort_multipart_upload", Key=key, UploadId=upload_id
            )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        kwargs: dict[str, Any] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        if length is not None and length > 0 and (crt := self._crt()):
            what, ask = f"reading {key}", kwargs["Range"]
            try:
                if length > s3_crt.SMALL_READ_BYTES:  # streamed: http.client, CRT-signed
                    return cast(
                        BinaryIO,
                        self.policy.call(what, lambda: crt.open_range(key, offset, length, what)),
                    )
                return io.BytesIO(self.policy.call(what, lambda: crt.get(key, ask, length, what)))
            except WrongRegion as exc:
                self._leave_crt(exc)
        resp = self._call(f"reading {key}", "get_object", Key=key, **kwargs)
        return cast(BinaryIO, resp["Body"])

    def stat(self, key: str) -> RemoteObject:
        r = self._call(f"checking {key}", "head_object", Key=key)
        tier = _TIER_OF.get(r.get("StorageClass", "STANDARD"), str(r.get("StorageClass")).lower())
        restore = str(r.get("Restore", ""))
        warm = tier not in COLD or 'ongoing-request="false"' in restore
        return RemoteObject(
            key=key,
            size=int(r["ContentLength"]),
            etag=r.get("ETag", "").strip('"'),
            tier=tier,
            modified_ns=int(r["LastModified"].timestamp() * 1e9),
            metadata=dict(r.get("Metadata", {})),
            warm=warm,
        )

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        what = f"listing s3://{self.bucket}/{prefix}"
        # a generator: nothing happens before the listing is read (as for every backend)
        if crt := self._crt():  # no botocore client (or its parsing) just to list
            listed = 0
            try:
                for obj in s3_listing.pages(
                    lambda q: self.policy.call(what, lambda: crt.list_objects(q, what)),
                    prefix,
                    self.list_page_size,
                    _tier_of,
                    COLD,
                    what,
                ):
                    listed += 1
                    yield obj
                return
            except WrongRegion as exc:
                if listed:
                    raise
                self._leave_crt(exc)
        yield from self._list_botocore(prefix)

    def _list_botocore(self, prefix: str) -> Iterator[RemoteObject]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix, "MaxKeys": self.list_page_size}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listing s3://{self.bucket}/{prefix}", "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                tier = _tier_of(item.get("StorageClass", "STANDARD"))
                yield RemoteObject(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=item.get("ETag", "").strip('"'),
                    tier=tier,
                    modified_ns=int(item["LastModified"].timestamp() * 1e9),
                    warm=tier not in COLD,
                )
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        """Unconditional deletes go 1,000 to a request; conditional ones one by one with
        If-Match (DeleteObjects' per-key ETag is not honoured by every store)."""
        batch: builtins.list[str] = []
        kept: builtins.list[str] = []
        for key in keys:
            if if_match and key in if_match:
                try:
                    self._call(f"deleting {key}", "delete_object", Key=key, IfMatch=if_match[key])
                except ObjectChanged:
                    kept.append(key)
                except NotFound:
                    pass
                continue
            batch.append(key)
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)
        return kept

    def copy(self, src: str, dest: str) -> None:
        """Server-side copy keeping metadata and storage class; in 1 GiB ranges above 5 GiB."""
        head = self._call(f"checking {src}", "head_object", Key=src)
        storage = head.get("StorageClass", "STANDARD")
        source = {"Bucket": self.bucket, "Key": src}
        size = int(head["ContentLength"])
        if size <= 5 * (1 << 30):
            self._call(
                f"copying {src}",
                "copy_object",
                Key=dest,
                CopySource=source,
                MetadataDirective="COPY",
                StorageClass=storage,
            )
            return
        upload_id = self._call(
            f"starting copy of {src}",
            "create_multipart_upload",
            Key=dest,
            Metadata=head.get("Metadata", {}),
            StorageClass=storage,
        )["UploadId"]
        try:
            parts = []
            step = 1 << 30
            for number, start in enumerate(range(0, size, step), 1):
                end = min(size, start + step) - 1
                resp = self._call(
                    f"copying part {number} of {src}",
                    "upload_part_copy",
                    Key=dest,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
            self._call(
                f"completing copy of {src}",
                "complete_multipart_upload",
                Key=dest,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.abort_upload(dest, upload_id)
            raise

    def _delete_batch(self, keys: Sequence[str]) -> None:
        resp = self._call(
            "deleting objects",
            "delete_objects",
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise BackendError(
                f"deleting {first.get('Key')}: {first.get('Code')} "
                f"{first.get('Message', '')} ({len(errors)} failed)"
            )

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        for key in keys:
            try:
                self._call(
                    f"thawing {key}",
                    "restore_object",
                    Key=key,
                    RestoreRequest={
                        "Days": days,
                        "GlacierJobParameters": {"Tier": speed.capitalize()},
                    },
                )
            except BackendError as exc:
                if "RestoreAlreadyInProgress" not in str(exc):
                    raise

    def close(self) -> None:
        self._sender.close()
        with self._lock:
            if self._shared_client is not None:
                self._shared_client.close()
            self._shared_client = None
            for crt in [self._crt_path, *self._retired]:
                if crt:
                    crt.close()
            self._crt_path = None
            self._retired.clear()
