"""Behaviour that wraps any backend: retries with exponential backoff and full jitter."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import BinaryIO, TypeVar

from hoard.backends.base import Backend, Journal, PutResult
from hoard.errors import Transient
from hoard.model import RemoteObject

T = TypeVar("T")
log = logging.getLogger("hoard.retry")


class Retrying(Backend):
    """Retries what the backend calls ``Transient`` (throttling, 5xx, dropped connections).

    Delay before attempt n is uniform in [0, min(max_delay_s, base_delay_s * 2**n)] (AWS's
    "full jitter"), so many workers hitting a throttled store spread out instead of stampeding.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 6,
        base_delay_s: float = 0.25,
        max_delay_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.capabilities = inner.capabilities
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.retries = 0

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            try:
                return fn()
            except Transient as exc:
                if attempt + 1 >= self.attempts:
                    raise
                with self._lock:
                    self.retries += 1
                    delay = self._rng.uniform(
                        0, min(self.max_delay_s, self.base_delay_s * 2**attempt)
                    )
                log.info("retrying %s in %.2fs after: %s", what, delay, exc)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        return self._run(
            f"upload of {key}", lambda: self.inner.put(key, path, size, metadata, tier, journal)
        )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self._run(f"read of {key}", lambda: self.inner.open(key, offset, length))

    def stat(self, key: str) -> RemoteObject:
        return self._run(f"stat of {key}", lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        # Retry each page start: resume after the last key yielded.
        last: str | None = None
        for attempt in range(self.attempts):
            try:
                for obj in self.inner.list(prefix):
                    if last is not None and obj.key <= last:
                        continue
                    last = obj.key
                    yield obj
                return
            except Transient as exc:
                if attempt + 1 >= self.attempts:
                    raise
                with self._lock:
                    self.retries += 1
                delay = self._rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
                log.info("retrying listing of %r in %.2fs after: %s", prefix, delay, exc)
                self._sleep(delay)

    def delete(self, keys: Iterable[str]) -> None:
        todo = list(keys)
        self._run("delete", lambda: self.inner.delete(todo))

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        todo = list(keys)
        self._run("thaw", lambda: self.inner.thaw(todo, days, speed))

    def close(self) -> None:
        self.inner.close()
