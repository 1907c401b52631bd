"""An in-memory store with a cold tier and fault injection, shipped for tests and experiments.

``faults`` is called as ``faults(operation, key)`` before every operation and may raise any
hoard error (e.g. ``Transient("SlowDown")``) to simulate a misbehaving store.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from hoard.backends.base import Backend, Capabilities, Journal, PutResult
from hoard.errors import NotFound, NotWarm, SourceUnreadable
from hoard.model import RemoteObject

CAPABILITIES = Capabilities(
    scheme="memory",
    tiers=("standard", "archive"),
    default_tier="standard",
    cold_tiers=("archive",),
    listing_has_metadata=True,
)


@dataclass
class _Stored:
    data: bytes
    info: RemoteObject
    thawing: bool = False


@dataclass
class MemoryBackend(Backend):
    name: str = "test"
    faults: Callable[[str, str], None] | None = None
    objects: dict[str, _Stored] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.url = f"memory://{self.name}"
        self.capabilities = CAPABILITIES
        self._lock = threading.Lock()

    def _op(self, op: str, key: str) -> None:
        with self._lock:
            self.calls.append((op, key))
        if self.faults is not None:
            self.faults(op, key)

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        self._op("put", key)
        tier = self.capabilities.tier(tier)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        info = RemoteObject(
            key=key,
            size=len(data),
            etag=etag,
            tier=tier,
            metadata=dict(metadata),
            warm=tier not in CAPABILITIES.cold_tiers,
        )
        with self._lock:
            self.objects[key] = _Stored(data, info)
        return PutResult(etag=etag, tier=tier)

    def _get(self, key: str) -> _Stored:
        with self._lock:
            stored = self.objects.get(key)
        if stored is None:
            raise NotFound(f"{key} does not exist")
        return stored

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        self._op("open", key)
        stored = self._get(key)
        if not stored.info.warm:
            raise NotWarm(f"{key} is in the {stored.info.tier} tier")
        end = len(stored.data) if length is None else offset + length
        return io.BytesIO(stored.data[offset:end])

    def stat(self, key: str) -> RemoteObject:
        self._op("stat", key)
        return self._get(key).info

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        self._op("list", prefix)
        with self._lock:
            keys = sorted(
                (k for k in self.objects if k.startswith(prefix)), key=lambda k: k.encode()
            )
        for key in keys:
            with self._lock:
                stored = self.objects.get(key)
            if stored is not None:
                yield stored.info

    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        kept = []
        for key in keys:
            self._op("delete", key)
            with self._lock:
                stored = self.objects.get(key)
                if stored and if_match and key in if_match and stored.info.etag != if_match[key]:
                    kept.append(key)
                    continue
                self.objects.pop(key, None)
        return kept

    def copy(self, src: str, dest: str) -> None:
        self._op("copy", src)
        stored = self._get(src)
        if not stored.info.warm:
            raise NotWarm(f"{src} is in the {stored.info.tier} tier")
        with self._lock:
            self.objects[dest] = _Stored(stored.data, replace(stored.info, key=dest))

    def flush(self) -> None:
        """Nothing to make durable; a fault on ``("flush", "")`` plays a failing barrier."""
        self._op("flush", "")

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        for key in keys:
            self._op("thaw", key)
            stored = self._get(key)
            stored.thawing = True

    def finish_thaws(self) -> None:
        """Make every object with a pending thaw readable, as hours passing would."""
        with self._lock:
            for stored in self.objects.values():
                if stored.thawing:
                    stored.info = replace(stored.info, warm=True)
                    stored.thawing = False
