"""Azure Blob Storage through azure-storage-blob: `az://container/prefix`.

Credentials come from the environment only: AZURE_STORAGE_CONNECTION_STRING, or an account URL
(AZURE_STORAGE_ACCOUNT_URL) with a SAS token (AZURE_STORAGE_SAS_TOKEN) or with
DefaultAzureCredential (the optional azure-identity package). Tiers are set in the same request
that stores the blob (Put Blob or Put Block List). Listings carry tier, archive status and
metadata, one request per thousand blobs. Metadata names become C#-identifier-safe
(`hoard-hash` is stored as `hoard_hash`). Large files are staged as blocks whose ids derive from
the upload's identity and the block index, journaled as they are staged, and committed at the
end; after a crash the uncommitted block list is read back and only missing blocks are sent.
Every request body carries a Content-MD5 the service verifies. Every request goes through the
retry policy; the SDK's own retries are off.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core import exceptions as aex
from azure.storage.blob import (
    BlobBlock,
    BlobServiceClient,
    ContainerClient,
    RehydratePriority,
    StandardBlobTier,
)

from hoard.backends import parts
from hoard.backends.base import Backend, Capabilities, Journal, PartRecord, PutResult
from hoard.backends.wrappers import AdaptiveLimit, RetryPolicy
from hoard.errors import (
    BackendError,
    BucketNotFound,
    CredentialsRejected,
    NotFound,
    NotWarm,
    ObjectChanged,
    PermissionDenied,
    SourceUnreadable,
    Transient,
    Unreachable,
)
from hoard.model import RemoteObject

MiB = parts.MiB
TIERS = {
    "hot": StandardBlobTier.HOT,
    "cool": StandardBlobTier.COOL,
    "cold": StandardBlobTier.COLD,
    "archive": StandardBlobTier.ARCHIVE,
}
TIER_NOTES = {
    "hot": "frequent access",
    "cool": "infrequent access; 30-day minimum",
    "cold": "rare access; 90-day minimum",
    "archive": "offline; must be rehydrated (hours) before reading; 180-day minimum",
}
MAX_BLOCKS = 50_000
CAPABILITIES = Capabilities(
    scheme="az",
    tiers=tuple(TIERS),
    default_tier="hot",
    cold_tiers=("archive",),
    listing_has_metadata=True,
    multipart_threshold_bytes=64 * MiB,
    min_part_bytes=1 * MiB,
    max_parts=MAX_BLOCKS,
    max_object_bytes=190 * (1 << 40),
    tier_notes=TIER_NOTES,
    min_storage_days={"cool": 30, "cold": 90, "archive": 180},
)
REHYDRATE = {
    "expedited": RehydratePriority.HIGH,
    "standard": RehydratePriority.STANDARD,
    "bulk": RehydratePriority.STANDARD,
}


def to_azure(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k.replace("-", "_"): v for k, v in metadata.items()}


def from_azure(metadata: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower().replace("_", "-"): v for k, v in (metadata or {}).items()}


def translate(exc: Exception, what: str) -> Exception:
    """Map an azure-core exception to hoard's error tree."""
    if isinstance(exc, aex.ServiceRequestError):
        return Unreachable(f"{what}: {exc}")
    if isinstance(exc, aex.ServiceResponseError):
        return Transient(f"{what}: {exc}")
    if isinstance(exc, aex.ClientAuthenticationError):
        return CredentialsRejected(f"{what}: {_first_line(exc)}")
    if not isinstance(exc, aex.HttpResponseError):
        return exc
    code = str(getattr(exc, "error_code", "") or "")
    status = exc.status_code or 0
    detail = f"{what}: {code or status} {_first_line(exc)}".rstrip()
    if code == "ContainerNotFound":
        return BucketNotFound(detail)
    if code == "BlobArchived":
        return NotWarm(f"{detail} (the blob is in the archive tier: rehydrate it first)")
    if status == 404:
        return NotFound(detail)
    if status == 412 or code == "ConditionNotMet":
        return ObjectChanged(detail)
    if status == 403:
        return PermissionDenied(detail)
    if status in (408, 429, 500, 502, 503, 504) or code in ("Md5Mismatch", "OperationTimedOut"):
        return Transient(detail)
    if "contentMD5" in str(exc) or "Content-MD5" in str(exc):
        return Transient(detail)
    return BackendError(detail)


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "message", "") or exc).splitlines()[0]


def service_from_environment(account_url: str | None = None) -> BlobServiceClient:
    """A service client from the environment; never from a command line or a config file."""
    options: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 120}
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    url = account_url or os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
    if conn and not account_url:
        try:
            return BlobServiceClient.from_connection_string(conn, **options)
        except ValueError as exc:
            raise CredentialsRejected(f"AZURE_STORAGE_CONNECTION_STRING: {exc}") from None
    if not url:
        raise CredentialsRejected(
            "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, "
            "or AZURE_STORAGE_ACCOUNT_URL with AZURE_STORAGE_SAS_TOKEN or "
            "an Azure AD login (pip install 'hoard[azure-identity]')"
        )
    sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    if sas:
        return BlobServiceClient(url, credential=sas.lstrip("?"), **options)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise CredentialsRejected(
            "AZURE_STORAGE_ACCOUNT_URL is set but neither "
            "AZURE_STORAGE_SAS_TOKEN nor azure-identity is available: "
            "pip install 'hoard[azure-identity]'"
        ) from None
    return BlobServiceClient(url, credential=DefaultAzureCredential(), **options)


class AzureBackend(Backend):
    capabilities = CAPABILITIES

    def __init__(
        self,
        container: str,
        *,
        account_url: str | None = None,
        multipart_threshold_bytes: int = 64 * MiB,
        part_bytes: int = 16 * MiB,
        workers: int = 8,
        policy: RetryPolicy | None = None,
        replace_archived: bool = False,
    ) -> None:
        self.container = container
        self.account_url = account_url
        self.multipart_threshold_bytes = multipart_threshold_bytes
        self.part_bytes = part_bytes
        self.replace_archived = replace_archived
        self.policy = policy or RetryPolicy(limit=AdaptiveLimit(2 * max(1, workers)))
        self._sender = parts.PartSender(workers)
        self._local = threading.local()
        self._lock = threading.Lock()
        probe = service_from_environment(account_url)
        self.url = f"az://{container}?account={probe.account_name}"
        probe.close()

    def _container(self) -> ContainerClient:
        client = getattr(self._local, "client", None)
        if client is None:  # one client per thread, never shared
            with self._lock:
                client = service_from_environment(self.account_url).get_container_client(
                    self.container
                )
            self._local.client = client
        return client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def once() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise translate(exc, what) from None

        return self.policy.call(what, once)

    def _blob(self, key: str) -> Any:
        return self._container().get_blob_client(key)

    # --- writing --------------------------------------------------------------------------
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
        try:
            return self._put(key, path, size, metadata, tier, journal)
        except NotWarm:
            if not self.replace_archived:
                raise BackendError(
                    f"{key} is in the archive tier and Azure refuses to overwrite archived "
                    "blobs; pass --replace-archived to delete it first and upload again (an "
                    "early-deletion charge may apply)"
                ) from None
            self.delete([key])
            return self._put(key, path, size, metadata, tier, journal)

    def _put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str,
        journal: Journal | None,
    ) -> PutResult:
        md = to_azure(metadata)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
        with fh:
            if size < self.multipart_threshold_bytes:
                data = parts.read_at_most(fh, size + 1, path)
                resp = self._call(
                    f"uploading {key}",
                    self._blob(key).upload_blob,
                    data,
                    overwrite=True,
                    metadata=md,
                    standard_blob_tier=TIERS[tier],
                    validate_content=True,
                    max_concurrency=1,
                )
                return PutResult(etag=str(resp.get("etag", "")).strip('"'), tier=tier)
            return self._blocks(key, fh.fileno(), path, size, md, tier, journal)

    def _blocks(
        self,
        key: str,
        fd: int,
        path: str,
        size: int,
        md: dict[str, str],
        tier: str,
        journal: Journal | None,
    ) -> PutResult:
        st = os.fstat(fd)
        identity = f"{self.container}/{key}\0{path}\0{size}\0{st.st_mtime_ns}\0{st.st_ino}"
        tag = hashlib.sha256(identity.encode()).hexdigest()[:16]

        def block_id(upload_id: str, number: int) -> str:
            return base64.b64encode(f"{upload_id}-{number:06d}".encode()).decode()

        def stored(upload_id: str) -> dict[int, tuple[int, str]]:
            _, uncommitted = self._call(
                f"listing blocks of {key}", self._blob(key).get_block_list, "uncommitted"
            )
            found = {}
            for b in uncommitted or []:
                text = base64.b64decode(b.id).decode(errors="replace")
                if text.startswith(upload_id + "-"):
                    found[int(text.rsplit("-", 1)[1])] = (int(b.size), b.id)
            return found

        def send(upload_id: str, number: int, data: bytes, algorithm: str) -> PartRecord:
            bid = block_id(upload_id, number)
            self._call(
                f"staging block {number} of {key}",
                self._blob(key).stage_block,
                bid,
                data,
                length=len(data),
                validate_content=True,
            )
            return PartRecord(number, len(data), bid, parts.checksum(algorithm, data))

        def complete(upload_id: str, done: builtins.list[PartRecord]) -> str:
            resp = self._call(
                f"committing {key}",
                self._blob(key).commit_block_list,
                [BlobBlock(block_id=p.etag) for p in done],
                metadata=md,
                standard_blob_tier=TIERS[tier],
            )
            return str(resp.get("etag", "")).strip('"')

        steps = parts.Steps(
            start=lambda part_bytes, algorithm: tag,
            stored=stored,
            abandon=lambda upload_id: None,
            send=send,
            complete=complete,
        )
        part_bytes = parts.part_size_for(size, self.part_bytes, MAX_BLOCKS, MiB)
        up = parts.upload_in_parts(steps, self._sender, fd, path, key, size, part_bytes, journal)
        return PutResult(etag=up.etag, tier=tier, parts=up.parts, resumed_bytes=up.resumed_bytes)

    # --- reading --------------------------------------------------------------------------
    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        ranged = offset > 0 or length is not None
        downloader = self._call(
            f"reading {key}",
            self._blob(key).download_blob,
            offset=offset if ranged else None,
            length=length,
            max_concurrency=1,
        )
        return io.BytesIO(self._call(f"reading {key}", downloader.readall))

    def stat(self, key: str) -> RemoteObject:
        p = self._call(f"checking {key}", self._blob(key).get_blob_properties)
        return self._remote(key, p)

    @staticmethod
    def _remote(key: str, p: Any) -> RemoteObject:
        tier = str(p.blob_tier or "Hot").lower()
        return RemoteObject(
            key=key,
            size=int(p.size),
            etag=str(p.etag).strip('"'),
            tier=tier,
            modified_ns=int(p.last_modified.timestamp() * 1e9),
            metadata=from_azure(p.metadata),
            warm=tier != "archive",
        )

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        pages = self._call(
            f"listing az://{self.container}/{prefix}",
            self._container().list_blobs,
            name_starts_with=prefix or None,
            include=["metadata"],
            results_per_page=1000,
        ).by_page()
        while True:
            page = self._call(f"listing az://{self.container}/{prefix}", next, pages, None)
            if page is None:
                return
            for p in self._call("reading a listing page", builtins.list, page):
                yield self._remote(p.name, p)

    # --- changing -------------------------------------------------------------------------
    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        kept = []
        for key in keys:
            kwargs: dict[str, Any] = {}
            if if_match and key in if_match:
                kwargs = {"etag": if_match[key], "match_condition": MatchConditions.IfNotModified}
            try:
                self._call(f"deleting {key}", self._blob(key).delete_blob, **kwargs)
            except ObjectChanged:
                try:  # some services answer 412, not 404, for a blob that is gone
                    self.stat(key)
                except NotFound:
                    continue
                kept.append(key)
            except NotFound:
                pass
        return kept

    def copy(self, src: str, dest: str) -> None:
        source = self.stat(src)
        if not source.warm:
            raise NotWarm(f"copying {src}: it is in the archive tier; rehydrate it first")
        target = self._blob(dest)
        self._call(
            f"copying {src}",
            target.start_copy_from_url,
            self._blob(src).url,
            metadata=to_azure(source.metadata),
            standard_blob_tier=TIERS[source.tier],
        )
        for _ in range(600):  # a copy inside one account is usually done at once
            status = self._call(f"copying {src}", target.get_blob_properties).copy.status
            if status != "pending":
                break
            time.sleep(0.5)
        if status != "success":
            raise BackendError(f"copying {src} to {dest} ended as {status}")

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        """Rehydrate archived blobs to the hot tier (Azure keeps them there: ``days`` does not
        apply); ``expedited`` maps to high priority, the others to standard."""
        for key in keys:
            self._call(
                f"rehydrating {key}",
                self._blob(key).set_standard_blob_tier,
                StandardBlobTier.HOT,
                rehydrate_priority=REHYDRATE.get(speed),
            )

    def close(self) -> None:
        self._sender.close()
