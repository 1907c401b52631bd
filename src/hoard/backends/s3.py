"""S3-compatible stores through boto3 (AWS, MinIO, R2, Wasabi, GCS's S3 API, SeaweedFS).

One botocore client per thread (clients are never shared across threads); retries are left to
``wrappers.Retrying`` so they are the same for every backend. Every body carries Content-MD5,
so the store rejects a corrupted transfer instead of storing it. Files above the multipart
threshold go up in parts, bounded in memory by one part per worker.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, cast

import boto3
from botocore import exceptions as bexc
from botocore.config import Config

from hoard.backends.base import Backend, Capabilities, Journal, PutResult
from hoard.errors import (
    BackendError,
    BucketNotFound,
    CredentialsRejected,
    NotFound,
    NotWarm,
    PermissionDenied,
    SourceUnreadable,
    Transient,
    Unreachable,
)
from hoard.model import RemoteObject

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
)
_THROTTLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "TooManyRequests",
    "RequestLimitExceeded",
    "InternalError",
    "ServiceUnavailable",
    "BadDigest",
    "XAmzContentSHA256Mismatch",
    "RequestTimeTooSkewed",
}
_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
}


def translate(exc: Exception, what: str) -> Exception:
    """Map a botocore/boto3 exception to hoard's error tree."""
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = f"{what}: {code or status} {err.get('Message', '')}".rstrip()
        if code == "NoSuchBucket":
            return BucketNotFound(detail)
        if code in ("NoSuchKey", "NotFound", "404", "NoSuchUpload"):
            return NotFound(detail)
        if code in _CREDENTIALS:
            return CredentialsRejected(detail)
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return PermissionDenied(detail)
        if code == "InvalidObjectState":
            return NotWarm(detail)
        if code in _THROTTLE or status in (429, 500, 502, 503, 504):
            return Transient(detail)
        return BackendError(detail)
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectTimeoutError):
        return Unreachable(f"{what}: {exc}")
    if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
        return CredentialsRejected(f"{what}: {exc}")
    transient = (
        bexc.HTTPClientError,
        bexc.ConnectionError,
        bexc.ResponseStreamingError,
        bexc.IncompleteReadError,
    )
    if isinstance(exc, transient):  # resets, closed connections, timeouts mid-request
        return Transient(f"{what}: {exc}")
    if isinstance(exc, bexc.BotoCoreError):
        return BackendError(f"{what}: {exc}")
    return exc


def part_size_for(size: int, preferred: int) -> int:
    """The part size: ``preferred`` unless that needs more than 10,000 parts (whole MiB)."""
    need = math.ceil(size / MAX_PARTS) if size else 0
    return max(preferred, MIN_PART_BYTES, math.ceil(need / MiB) * MiB)


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Backend(Backend):
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
        connect_timeout_s: float = 5,
        read_timeout_s: float = 60,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}" + (f"?endpoint={endpoint_url}" if endpoint_url else "")
        self.profile = profile
        self.region = region
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.part_bytes = part_bytes
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            s3={"addressing_style": "path" if path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="hoard",
            max_pool_connections=4,
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Any] = []

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:  # session creation reads shared files; keep it serial
                try:
                    session = boto3.session.Session(profile_name=self.profile)
                except bexc.ProfileNotFound as exc:
                    raise CredentialsRejected(str(exc)) from None
                client = session.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region or session.region_name or "us-east-1",
                    config=self._config,
                )
                self._clients.append(client)
            self._local.client = client
        return client

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client(), method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise translate(exc, what) from None

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        tier = tier or "standard"
        if tier not in STORAGE_CLASSES:
            raise BackendError(
                f"unknown S3 tier {tier!r}; choose one of {', '.join(STORAGE_CLASSES)}"
            )
        extra = {"Metadata": dict(metadata), "StorageClass": STORAGE_CLASSES[tier]}
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
        with fh:
            if size < self.multipart_threshold_bytes:
                data = _read(fh, size + 1, path)
                resp = self._call(
                    f"uploading {key}",
                    "put_object",
                    Key=key,
                    Body=data,
                    ContentMD5=_md5_b64(data),
                    **extra,
                )
                return PutResult(etag=resp.get("ETag", "").strip('"'), tier=tier)
            return self._multipart(key, fh, path, size, extra, tier, journal)

    def _multipart(
        self,
        key: str,
        fh: BinaryIO,
        path: str,
        size: int,
        extra: dict[str, Any],
        tier: str,
        journal: Journal | None,
    ) -> PutResult:
        part_bytes = part_size_for(size, self.part_bytes)
        upload_id = self._call(
            f"starting upload of {key}", "create_multipart_upload", Key=key, **extra
        )["UploadId"]
        if journal is not None:
            journal.started(key, upload_id, part_bytes)
        parts = []
        try:
            number = 1
            while chunk := _read(fh, part_bytes, path):
                md5 = _md5_b64(chunk)
                resp = self._call(
                    f"uploading part {number} of {key}",
                    "upload_part",
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ContentMD5=md5,
                )
                etag = resp["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
                if journal is not None:
                    journal.part_done(key, upload_id, number, len(chunk), etag, "md5:" + md5)
                number += 1
            resp = self._call(
                f"completing upload of {key}",
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if journal is None:
                self._abort(key, upload_id)
            raise
        if journal is not None:
            journal.finished(key, upload_id)
        return PutResult(etag=resp.get("ETag", "").strip('"'), tier=tier, parts=len(parts))

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self._call(
                f"aborting upload of {key}", "abort_multipart_upload", Key=key, UploadId=upload_id
            )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        kwargs: dict[str, Any] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
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
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listing s3://{self.bucket}/{prefix}", "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                tier = _TIER_OF.get(
                    item.get("StorageClass", "STANDARD"), str(item.get("StorageClass")).lower()
                )
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

    def delete(self, keys: Iterable[str]) -> None:
        batch: builtins.list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

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
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def _read(fh: BinaryIO, n: int, path: str) -> bytes:
    try:
        return fh.read(n)
    except OSError as exc:
        raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
