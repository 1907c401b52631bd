"""The backend contract: a small interface every store implements, keyed by validated strings.

Keys are full keys inside the store (bucket, container or folder); the remote URL's prefix is
joined by the caller. Backends translate every SDK error into ``hoard.errors`` classes
(`NotFound`, `Transient`, `PermissionDenied`, `NotWarm`, …); nothing else leaves this package.
A backend instance may be used from several threads: it keeps its SDK clients safe for that.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from hoard.errors import BackendError
from hoard.model import RemoteObject


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers, declared rather than discovered by trial."""

    scheme: str
    tiers: tuple[str, ...]
    default_tier: str
    cold_tiers: tuple[str, ...] = ()
    listing_has_metadata: bool = False
    multipart_threshold_bytes: int = 0
    min_part_bytes: int = 0
    max_parts: int = 0
    max_object_bytes: int = 0
    tier_notes: Mapping[str, str] | None = None
    #: days an object of a tier is billed for at least, even when deleted sooner
    min_storage_days: Mapping[str, int] | None = None

    def tier(self, requested: str | None) -> str:
        """The tier to write: ``requested`` if this store offers it, the default for None."""
        tier = requested or self.default_tier
        if tier not in self.tiers:
            raise BackendError(
                f"{self.scheme} has no tier {tier!r}; it offers {', '.join(self.tiers)}"
            )
        return tier


@dataclass(frozen=True)
class PutResult:
    etag: str
    tier: str
    parts: int = 1
    #: bytes that were already on the store from an earlier, interrupted upload
    resumed_bytes: int = 0


@dataclass(frozen=True)
class PartRecord:
    """One stored part of a multipart upload; ``checksum`` is what the store verified
    (`md5:<base64>` or `crc64nvme:<base64>`), so re-hashing the local bytes proves the part
    still matches the file."""

    number: int
    size: int
    etag: str
    checksum: str


@dataclass(frozen=True)
class UploadState:
    """An unfinished multipart upload of this key, as the journal last recorded it."""

    upload_id: str
    part_bytes: int
    same_source: bool  # the file's size, mtime_ns and inode are what they were
    parts: Mapping[int, PartRecord]


class Journal(Protocol):
    """Where a backend records a multipart upload of one file as it goes, so that a crash at
    any point can resume it. The catalog implements it (backends never import the catalog);
    it is called from worker threads. A backend without multipart ignores it."""

    def previous(self) -> UploadState | None: ...
    def started(self, upload_id: str, part_bytes: int) -> None: ...
    def part_done(self, part: PartRecord) -> None: ...
    def resumed(self, resumed_bytes: int) -> None: ...
    def finished(self) -> None: ...


@dataclass(frozen=True)
class IncompleteUpload:
    key: str
    upload_id: str
    initiated_ns: int


@runtime_checkable
class UploadCleanup(Protocol):
    """Stores whose unfinished multipart uploads keep costing money until aborted."""

    def incomplete_uploads(self, prefix: str) -> Iterator[IncompleteUpload]: ...
    def abort_upload(self, key: str, upload_id: str) -> None: ...


class Backend(abc.ABC):
    """A store of objects. ``url`` identifies the store (not a prefix) in the catalog."""

    url: str
    capabilities: Capabilities

    @abc.abstractmethod
    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        """Store the file at ``path`` (``size`` bytes) under ``key`` with user ``metadata``
        (lower-case ASCII names, str values) in ``tier`` (None: the default). Overwrites.
        Reads the file itself, so a retry re-reads from the start."""

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
        """``put``, without waiting for it, where the store has a way to (S3: a small file
        through the CRT): True once started, and then ``done(result, None)`` or ``done(None,
        error)`` is called exactly once, from any thread, and must not block. This is one
        attempt, never retried: after an error the caller uses ``put``, which retries and
        says what went wrong. False where it cannot start, and then ``done`` is never called:
        use ``put``. ``wait=False``: never block (the caller is one of the store client's own
        threads, inside ``done``), and so False also while the store's request limit is
        reached (then try again with ``wait``)."""
        return False

    def start_get(
        self,
        key: str,
        size: int,
        done: Callable[[bytes | None, Exception | None], None],
        wait: bool = True,
    ) -> bool:
        """The whole of a small object (``size`` bytes), read without waiting for it where the
        store has a way to (S3: through the CRT), as ``start_put``: True once started, then
        ``done(data, None)`` or ``done(None, error)`` exactly once, from any thread. One
        attempt, never retried: after an error the caller uses ``open``. The caller checks the
        bytes (their length and hash)."""
        return False

    @abc.abstractmethod
    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A readable stream of the object's bytes; raises NotFound or NotWarm."""

    @abc.abstractmethod
    def stat(self, key: str) -> RemoteObject:
        """Size, etag, tier, warm state and metadata of one object; raises NotFound."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        """Objects whose key starts with ``prefix``, sorted by key (UTF-8 byte order).
        Metadata is filled only where ``capabilities.listing_has_metadata``."""

    @abc.abstractmethod
    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        """Remove objects; keys that do not exist are not an error. With ``if_match`` (key →
        the etag a listing showed), an object that changed since is left alone where the store
        can check (S3: If-Match); returns the keys left alone that way."""

    @abc.abstractmethod
    def copy(self, src: str, dest: str) -> None:
        """Copy an object inside the store, keeping its metadata and tier; raises NotWarm for a
        frozen object."""

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:  # noqa: B027
        """Start restores from archive tiers. A store without cold tiers has nothing to do."""

    def flush(self) -> None:  # noqa: B027
        """Make every object ``put`` has stored so far durable: once this returns, a crash of
        the machine cannot lose them. The catalog records an upload only after this. A store
        whose ``put`` is durable when it returns (S3, Azure) has nothing to do."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""
