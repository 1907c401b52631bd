"""A backend opened on first use.

A nightly rerun over unchanged files decides everything from the catalog and sends nothing, so
``push`` and ``sync`` hand the plan a backend that is only opened, and its module only imported,
when a request is to be made (importing the S3 backend costs ~12 ms of a ~150 ms rerun). Only
``url`` is known without opening: it names the store in the catalog. Once open, every call goes
straight to the real backend.

It is a wrapper, not the backend: ``isinstance`` and ``hasattr`` checks for what a backend
offers (``UploadCleanup``, say) must be made on an opened backend, and attributes set on the
wrapper do not reach it. Commands that need such checks (cleanup, restore) open the backend
directly.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from hoard.backends.base import Backend, Capabilities, Journal, PutResult
from hoard.model import RemoteObject


class Deferred(Backend):
    def __init__(self, url: str, opener: Callable[[], Backend]) -> None:
        self.url = url
        self._opener = opener
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._backend is not None

    def _real(self) -> Backend:
        backend = self._backend
        if backend is None:
            with self._lock:
                if self._backend is None:
                    made = self._opener()
                    if made.url != self.url:  # the catalog would file its objects elsewhere
                        made.close()
                        raise AssertionError(f"store {made.url!r} opened for {self.url!r}")
                    self._backend = made
                backend = self._backend
        return backend

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self._real().capabilities

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        return self._real().put(key, path, size, metadata, tier, journal)

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
        return self._real().start_put(key, path, size, metadata, tier, done, wait)

    def start_get(
        self,
        key: str,
        size: int,
        done: Callable[[bytes | None, Exception | None], None],
        wait: bool = True,
    ) -> bool:
        return self._real().start_get(key, size, done, wait)

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._real().open(key, offset, length)

    def stat(self, key: str) -> RemoteObject:
        return self._real().stat(key)

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        return self._real().list(prefix)

    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        return self._real().delete(keys, if_match)

    def copy(self, src: str, dest: str) -> None:
        self._real().copy(src, dest)

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        self._real().thaw(keys, days, speed)

    def flush(self) -> None:
        if self._backend is not None:  # nothing was stored through a backend never opened
            self._backend.flush()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def __getattr__(self, name: str) -> Any:
        """Whatever else the real backend offers (an S3 backend's request counters, say)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real(), name)
