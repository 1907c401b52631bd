"""Behaviour around any backend: retries with exponential backoff and full jitter, and an
adaptive limit on concurrent requests that shrinks while the store throttles.

``RetryPolicy`` is the one mechanism; ``Retrying`` applies it to whole operations of any
backend, and the S3 backend applies the same policy to each request of a multipart upload (a
failed part is retried alone instead of restarting a 100 GB file).
"""

from __future__ import annotations

import builtins
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


class AdaptiveLimit:
    """At most ``limit`` requests at once. Throttling halves the limit (once per cooldown, so a
    burst of 503s counts once); each run of successes as long as the limit adds one back, up
    to ``max_limit`` (additive increase, multiplicative decrease, as TCP does)."""

    def __init__(
        self, max_limit: int, cooldown_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_limit = max(1, max_limit)
        self.limit = float(self.max_limit)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._in_flight = 0
        self._cond = threading.Condition()
        self._last_cut = -1e18
        self.lowest = self.max_limit

    def acquire(self) -> None:
        with self._cond:
            while self._in_flight >= int(self.limit):
                self._cond.wait()
            self._in_flight += 1

    def try_acquire(self) -> bool:
        """``acquire`` if that would not wait; whether it did."""
        with self._cond:
            if self._in_flight >= int(self.limit):
                return False
            self._in_flight += 1
            return True

    def release(self, throttled: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if throttled:
                now = self._clock()
                if now - self._last_cut >= self.cooldown_s:
                    self._last_cut = now
                    self.limit = max(1.0, self.limit / 2)
                    self.lowest = min(self.lowest, int(self.limit))
                    log.info("store is throttling: at most %d requests at once", int(self.limit))
            else:
                self.limit = min(float(self.max_limit), self.limit + 1 / self.limit)
            self._cond.notify_all()


class RetryPolicy:
    """Retries ``Transient`` failures; delay before retry n is uniform in
    [0, min(max_delay_s, base_delay_s * 2**n)] (AWS's "full jitter")."""

    def __init__(
        self,
        attempts: int = 6,
        base_delay_s: float = 0.25,
        max_delay_s: float = 20.0,
        limit: AdaptiveLimit | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.limit = limit
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.retries = 0

    def backoff(self, what: str, attempt: int, exc: Exception) -> None:
        """Count a retry and sleep before attempt ``attempt + 1``."""
        with self._lock:
            self.retries += 1
            delay = self._rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        log.info("retrying %s in %.2fs after: %s", what, delay, exc)
        self._sleep(delay)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.attempts):
            if self.limit is not None:
                self.limit.acquire()
            try:
                result = fn()
            except Transient as exc:
                if self.limit is not None:
                    self.limit.release(throttled=True)
                if attempt + 1 >= self.attempts:
                    raise
                self.backoff(what, attempt, exc)
                continue
            except BaseException:
                if self.limit is not None:
                    self.limit.release(throttled=False)
                raise
            if self.limit is not None:
                self.limit.release(throttled=False)
            return result
        raise AssertionError("unreachable")


class Retrying(Backend):
    """Any backend, with every operation retried under ``policy``."""

    def __init__(self, inner: Backend, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.capabilities = inner.capabilities
        self.policy = policy or RetryPolicy()

    @property
    def retries(self) -> int:
        return self.policy.retries

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        return self.policy.call(
            f"upload of {key}", lambda: self.inner.put(key, path, size, metadata, tier, journal)
        )

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self.policy.call(f"read of {key}", lambda: self.inner.open(key, offset, length))

    def stat(self, key: str) -> RemoteObject:
        return self.policy.call(f"stat of {key}", lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        last: str | None = None  # a retried listing resumes after the last key yielded
        for attempt in range(self.policy.attempts):
            try:
                for obj in self.inner.list(prefix):
                    if last is not None and obj.key <= last:
                        continue
                    last = obj.key
                    yield obj
                return
            except Transient as exc:
                if attempt + 1 >= self.policy.attempts:
                    raise
                self.policy.backoff(f"listing of {prefix!r}", attempt, exc)

    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        todo = list(keys)
        return self.policy.call("delete", lambda: self.inner.delete(todo, if_match))

    def copy(self, src: str, dest: str) -> None:
        self.policy.call(f"copy of {src}", lambda: self.inner.copy(src, dest))

    def thaw(self, keys: Iterable[str], days: int, speed: str) -> None:
        todo = list(keys)
        self.policy.call("thaw", lambda: self.inner.thaw(todo, days, speed))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
