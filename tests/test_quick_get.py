"""Small objects come back from S3 without a thread waiting for each one (``S3Backend.start_get``,
through the CRT's callbacks; ``download.download_all`` starts them and writes what arrives): a
quick read that fails is fetched again by a worker (its retries, its errors), a damaged object
is not placed, and an interruption places and records exactly what was written. Against
SeaweedFS behind a fault proxy."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest

from hoard import durable
from hoard import restore as r
from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import AdaptiveLimit, RetryPolicy
from hoard.catalog import Catalog
from hoard.errors import Transient
from hoard.push import PushSettings, run_push
from hoard.report import NullReporter
from tests.conftest import make_tree
from tests.faultproxy import FaultProxy, Request
from tests.test_quick_put import _backend, _Done


class _Counting(S3Backend):
    """The S3 backend (as ``_backend``, 4 workers), counting the reads started without
    waiting."""

    quick = 0

    def __init__(self, bucket: str, url: str) -> None:
        policy = RetryPolicy(sleep=lambda s: None, limit=AdaptiveLimit(8))
        super().__init__(bucket, endpoint_url=url, path_style=True, policy=policy, workers=4)

    def start_get(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        ok = super().start_get(*args, **kwargs)
        self.quick += ok
        return ok


def _pushed(src: Path, bucket: str, endpoint: str, catalog: Catalog) -> None:
    """Push ``src`` straight to the store (not through the proxy): objects with hoard's hash."""
    b = S3Backend(bucket, endpoint_url=endpoint, path_style=True)
    try:
        settings = PushSettings(sources=(str(src),), remote=b.url, workers=4)
        assert run_push(settings, b, catalog, NullReporter(), time.time_ns).outcome == "ok"
    finally:
        b.close()


def _restore(b: S3Backend, catalog: Catalog, to: Path, workers: int, backends=None):  # type: ignore[no-untyped-def]
    settings = r.RestoreSettings(url=b.url, to=str(to), workers=workers)
    steps = r.plan_restore(r.select_prefix(b, "", catalog), [], settings, catalog,
                           lambda s: b, time.time_ns())  # fmt: skip
    return r.run_restore(steps, settings, catalog, backends or (lambda s: b), NullReporter(),
                         time.time_ns)  # fmt: skip


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _gets(p: FaultProxy) -> list[str]:
    """The objects read through the proxy (forwarded GETs that are not listings)."""
    return [q.path for q in p.requests if q.method == "GET" and "list-type" not in q.query]


def _takes_batches(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return durable.trusted(fd)
    finally:
        os.close(fd)


def _restore_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("hoard-restore")}


def test_start_get_reads_a_small_object_whole_and_calls_done_once(
    proxy: FaultProxy, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy, proxy.url  # type: ignore[attr-defined]  (conftest's proxy)
    p.delay_s["GET"] = 0.2
    s3 = boto3.client("s3", endpoint_url=seaweed_endpoint)
    objects = {f"k{i:02d}": os.urandom(100 + i) for i in range(12)}
    for key, data in objects.items():
        s3.put_object(Bucket=seaweed_bucket, Key=key, Body=data)
    b = _backend(seaweed_bucket, url, workers=2)  # the policy's limit: 4 requests at once
    d = _Done()
    try:
        started = time.monotonic()
        for key, data in objects.items():
            assert b.start_get(key, len(data), d.for_key(key))
        # 12 GETs of 0.2 s, 4 at a time: the calls waited only for the limit, not for each
        assert time.monotonic() - started < 12 * 0.2
        d.wait(12)
        assert {k: (got, error) for k, got, error in d.calls} == {
            k: (data, None) for k, data in objects.items()
        }
        assert len(_gets(p)) == 12 and p.max_in_flight["GET"] == 4
        # what it leaves to open: nothing to read, more than one request's worth
        assert not b.start_get("k00", 0, d.for_key("empty"))
        assert not b.start_get("k00", (8 << 20) + 1, d.for_key("big"))
        # from the store client's own thread (wait=False) it never waits for the limit
        assert b.policy.limit is not None
        for _ in range(int(b.policy.limit.limit)):
            b.policy.limit.acquire()
        assert not b.start_get("k00", 100, d.for_key("full"), wait=False)
    finally:
        b.close()
    assert len(d.calls) == 12 and len(_gets(p)) == 12


def test_a_failed_quick_get_says_why_and_throttling_halves_the_limit(
    proxy: FaultProxy, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy, proxy.url  # type: ignore[attr-defined]  (conftest's proxy)
    boto3.client("s3", endpoint_url=seaweed_endpoint).put_object(
        Bucket=seaweed_bucket, Key="f", Body=b"x" * 10
    )
    p.decide = lambda q: "slowdown" if q.method == "GET" else "pass"
    b = _backend(seaweed_bucket, url, workers=4)
    d = _Done()
    try:
        assert b.start_get("f", 10, d.for_key("f"))
        d.wait(1)
        [(_, data, error)] = d.calls
        assert data is None and isinstance(error, Transient) and "SlowDown" in str(error)
        assert b.policy.limit is not None and b.policy.limit.limit == 4  # 8, halved
        assert p.outcomes["slowdown"] == 1  # one attempt: retrying is open's
    finally:
        b.close()


def test_a_restore_of_small_files_needs_no_thread_per_file(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy, proxy.url  # type: ignore[attr-defined]  (conftest's proxy)
    seen: set[str] = set()

    def decide(q: Request) -> str:
        seen.update(_restore_threads())
        return "pass"

    p.decide = decide
    p.delay_s["GET"] = 0.05
    src = make_tree(tmp_path / "src", {f"d{i % 4}/f{i:03d}": os.urandom(50 + i) for i in range(80)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    _pushed(src, seaweed_bucket, seaweed_endpoint, catalog)
    b = _backend(seaweed_bucket, url, workers=4)
    try:
        result = _restore(b, catalog, tmp_path / "out", workers=4)
    finally:
        b.close()
    assert result.outcome == "ok" and result.restored == 80, result.errors
    assert _files(tmp_path / "out") == _files(src)
    assert not list((tmp_path / "out").rglob("*.hoard-part"))
    # every object read once, at most --workers at a time, and no worker thread started,
    # where the target takes batches (elsewhere each file is fsynced alone, by a worker)
    assert len(_gets(p)) == 80 and p.max_in_flight["GET"] == 4
    assert (seen == set()) == _takes_batches(tmp_path)
    for rel in _files(src):
        assert catalog.restored(str(tmp_path / "out" / rel)) is not None


def test_quick_gets_that_fail_are_fetched_again_and_a_damaged_object_is_not_placed(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy, proxy.url  # type: ignore[attr-defined]  (conftest's proxy)
    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i:03d}": os.urandom(64) for i in range(60)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    _pushed(src, seaweed_bucket, seaweed_endpoint, catalog)
    s3 = boto3.client("s3", endpoint_url=seaweed_endpoint)
    head = s3.head_object(Bucket=seaweed_bucket, Key="d1/f010")
    s3.put_object(Bucket=seaweed_bucket, Key="d1/f010", Body=os.urandom(64),  # same size
                  Metadata=head["Metadata"])  # fmt: skip
    tried: set[str] = set()
    again: list[set[str]] = []
    lock = threading.Lock()

    def decide(q: Request) -> str:
        if q.method != "GET" or not q.path.rsplit("/", 1)[-1].startswith("f0"):
            return "pass"
        with lock:  # the first GET of f000..f039 is reset or answered 500, by turns
            if q.path in tried:
                again.append(_restore_threads())
                return "pass"
            if len(tried) >= 40 or q.path.endswith("f010"):
                return "pass"
            tried.add(q.path)
            return "reset" if len(tried) % 2 else "internal"

    p.decide = decide
    b = _Counting(seaweed_bucket, url)
    try:
        result = _restore(b, catalog, tmp_path / "out", workers=4)
    finally:
        b.close()
    assert b.quick == 60  # each object read once without waiting; the 40 again by a worker
    assert len(again) == 40 and all(again)
    assert result.restored == 59 and result.failed == 1 and not result.stopped_by
    [error] = result.errors
    assert "d1/f010" in error and "does not match the recorded" in error
    want = _files(src)
    del want["d1/f010"]
    assert _files(tmp_path / "out") == want  # not placed, no temporary file left
    # the 40 failed quick reads (never forwarded) were made once more, waiting; the damaged
    # object was read once: a hash that does not match is not a reason to read it again
    assert p.outcomes["reset"] == p.outcomes["internal"] == 20
    gets = _gets(p)
    assert len(gets) == 60 and sum(g.endswith("/d1/f010") for g in gets) == 1


def test_an_interrupted_restore_places_and_records_exactly_what_it_wrote(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, seaweed_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, url = proxy, proxy.url  # type: ignore[attr-defined]  (conftest's proxy)
    p.delay_s["GET"] = 0.02
    # every 7th file is larger than one range: a worker fetches it, in ranges
    monkeypatch.setattr(r, "RANGE_BYTES", 64 << 10)
    files: dict[str, bytes | str] = {
        f"d{i % 4}/f{i:03d}": os.urandom(150_000 if i % 7 == 0 else 40) for i in range(120)
    }
    src = make_tree(tmp_path / "src", files)
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    _pushed(src, seaweed_bucket, seaweed_endpoint, catalog)
    out = tmp_path / "out"
    b = _backend(seaweed_bucket, url, workers=4)
    slow: Counter[str] = Counter()  # large files' ranges on their way
    lock = threading.Lock()

    def decide(q: Request) -> str:
        name = q.path.rsplit("/", 1)[-1]
        if q.method == "GET" and name.startswith("f") and int(name[1:]) % 7 == 0:
            with lock:
                slow[q.path.split("/", 2)[-1]] += 1
            time.sleep(0.3)
            with lock:
                slow[q.path.split("/", 2)[-1]] -= 1
        return "pass"

    p.decide = decide
    calls = 0
    in_flight: set[str] = set()

    def backends(store: str) -> S3Backend:  # Ctrl-C with a worker mid-way through a file
        nonlocal calls
        calls += 1
        with lock:
            if calls > 30 and not in_flight and +slow:
                in_flight.update(+slow)
                raise KeyboardInterrupt
        return b

    try:
        with pytest.raises(KeyboardInterrupt):
            _restore(b, catalog, out, workers=4, backends=backends)
        placed = _files(out)
        assert 0 < len(placed) < 120 and not list(out.rglob("*.hoard-part"))
        # the files workers were fetching at that moment were finished and placed
        assert in_flight and in_flight <= set(placed)
        # each file under its name is complete, recorded, and the only ones recorded
        for rel, data in placed.items():
            assert data == (src / rel).read_bytes()
        recorded = {rel for rel in files if catalog.restored(str(out / rel)) is not None}
        assert recorded == set(placed)
        again = _restore(b, catalog, out, workers=4)
    finally:
        b.close()
    assert again.outcome == "ok" and again.restored == 120 - len(placed)
    assert _files(out) == _files(src)
