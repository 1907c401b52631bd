"""The adaptive concurrency limit and the retry policy, driven by an injected clock."""

from __future__ import annotations

import threading
import time

import pytest

from hoard.backends.wrappers import AdaptiveLimit, RetryPolicy
from hoard.errors import Transient


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttling_halves_the_limit_once_per_cooldown_and_successes_restore_it() -> None:
    clock = Clock()
    limit = AdaptiveLimit(16, cooldown_s=1.0, clock=clock)
    for _ in range(5):  # a burst of 503s within one cooldown counts once
        limit.acquire()
        limit.release(throttled=True)
    assert int(limit.limit) == 8
    clock.now = 1.5
    limit.acquire()
    limit.release(throttled=True)
    assert int(limit.limit) == 4 and limit.lowest == 4
    for _ in range(200):
        limit.acquire()
        limit.release(throttled=False)
    assert int(limit.limit) == 16  # additive increase, capped at the maximum


def test_the_limit_never_drops_below_one() -> None:
    clock = Clock()
    limit = AdaptiveLimit(2, cooldown_s=0, clock=clock)
    for _ in range(10):
        limit.acquire()
        limit.release(throttled=True)
    assert limit.limit == 1.0


def test_try_acquire_takes_a_slot_only_while_one_is_free() -> None:
    limit = AdaptiveLimit(2)
    assert limit.try_acquire() and limit.try_acquire()
    assert not limit.try_acquire()  # full: refused at once, nothing taken
    limit.release(throttled=False)
    assert limit.try_acquire() and not limit.try_acquire()


def test_no_more_than_limit_requests_run_at_once() -> None:
    limit = AdaptiveLimit(3)
    running, peak = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        limit.acquire()
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        limit.release(throttled=False)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_policy_retries_transient_failures_with_jittered_backoff() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=5, base_delay_s=1.0, max_delay_s=3.0, sleep=sleeps.append)
    calls = [0]

    def flaky() -> str:
        calls[0] += 1
        if calls[0] < 5:
            raise Transient("503 SlowDown")
        return "ok"

    assert policy.call("put", flaky) == "ok"
    assert policy.retries == 4
    assert [s <= cap for s, cap in zip(sleeps, [1, 2, 3, 3], strict=True)] == [True] * 4


def test_policy_gives_up_after_its_attempts_and_never_retries_other_errors() -> None:
    policy = RetryPolicy(attempts=3, sleep=lambda s: None)
    with pytest.raises(Transient):
        policy.call("put", lambda: (_ for _ in ()).throw(Transient("down")))
    assert policy.retries == 2
    calls = [0]

    def broken() -> None:
        calls[0] += 1
        raise ValueError("bug")

    with pytest.raises(ValueError):
        policy.call("put", broken)
    assert calls[0] == 1
