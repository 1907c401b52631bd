"""Small files go up to S3 without a thread waiting for each one (``S3Backend.start_put``,
through the CRT's callbacks; ``transfer._Workers`` starts them): one thread keeps the PUTs in
flight, a quick attempt that fails is made again with ``put`` (its retries, its errors), a
stalled one is cancelled, and a stop lets the PUTs in flight finish and records them. Against
SeaweedFS behind a fault proxy."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import AdaptiveLimit, RetryPolicy
from hoard.catalog import Catalog
from hoard.errors import Transient
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import NullReporter
from hoard.transfer import execute
from tests.conftest import make_tree
from tests.faultproxy import FaultProxy, Request
from tests.test_transfer_feed import _uploads

MD = {"hoard-hash": "blake3:abc"}


@pytest.fixture
def proxy(seaweed_endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:
        yield p, url


def _backend(bucket: str, url: str, workers: int = 8, **kw: object) -> S3Backend:
    policy = RetryPolicy(sleep=lambda s: None, limit=AdaptiveLimit(2 * workers))
    return S3Backend(
        bucket, endpoint_url=url, path_style=True, policy=policy, workers=workers, **kw  # type: ignore[arg-type]
    )


class _Done:
    """Collects ``done`` calls: (key, result, error), and how many came per key."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, Exception | None]] = []
        self._lock = threading.Lock()

    def for_key(self, key: str):  # type: ignore[no-untyped-def]
        def done(result: object, error: Exception | None) -> None:
            with self._lock:
                self.calls.append((key, result, error))

        return done

    def wait(self, n: int, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.calls) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # a second call for a key would come now
        assert len(self.calls) == n, self.calls


def test_start_put_returns_at_once_and_calls_done_once_with_the_etag(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy
    p.delay_s["PutObject"] = 0.2
    files = {f"k{i:02d}": os.urandom(100 + i) for i in range(12)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    b = _backend(seaweed_bucket, url, workers=2)  # the policy's limit: 4 requests at once
    d = _Done()
    try:
        started = time.monotonic()
        for name, data in files.items():
            assert b.start_put(name, str(tmp_path / name), len(data), MD, None, d.for_key(name))
        # 12 PUTs of 0.2 s, 4 at a time: the calls waited only for the limit, not for each
        assert time.monotonic() - started < 12 * 0.2
        d.wait(12)
        assert sorted(k for k, _, _ in d.calls) == sorted(files)
        for key, result, error in d.calls:
            assert error is None
            assert result.etag == hashlib.md5(files[key]).hexdigest()  # type: ignore[attr-defined]
        assert b.crt_requests == 12 and p.count("PutObject") == 12
        assert p.max_in_flight["PutObject"] == 4
        s3 = boto3.client("s3", endpoint_url=seaweed_endpoint)
        head = s3.head_object(Bucket=seaweed_bucket, Key="k03")
        assert head["Metadata"] == MD and head["ContentLength"] == 103
    finally:
        b.close()


def test_start_put_leaves_to_put_what_it_cannot_start(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    small = tmp_path / "small"
    small.write_bytes(b"x" * 10)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 << 20))
    b = _backend(seaweed_bucket, url, multipart_threshold_bytes=1 << 20)
    d = _Done()
    try:
        assert not b.start_put("big", str(big), 2 << 20, MD, None, d.for_key("big"))
        assert not b.start_put("gone", str(tmp_path / "gone"), 10, MD, None, d.for_key("gone"))
        assert b.start_put("small", str(small), 10, MD, None, d.for_key("small"))
        d.wait(1)
        # from the store client's own thread (wait=False) it never waits for the limit
        assert b.policy.limit is not None
        for _ in range(int(b.policy.limit.limit)):
            b.policy.limit.acquire()
        assert not b.start_put("full", str(small), 10, MD, None, d.for_key("full"), wait=False)
    finally:
        b.close()
    assert [k for k, _, _ in d.calls] == ["small"]
    assert p.count("PutObject") == 1


def test_a_failed_quick_put_says_why_and_throttling_halves_the_limit(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    p.decide = lambda r: "slowdown" if r.method == "PUT" else "pass"
    (tmp_path / "f").write_bytes(b"x" * 10)
    b = _backend(seaweed_bucket, url, workers=4)
    d = _Done()
    try:
        assert b.start_put("f", str(tmp_path / "f"), 10, MD, None, d.for_key("f"))
        d.wait(1)
        [(_, result, error)] = d.calls
        assert result is None and isinstance(error, Transient) and "SlowDown" in str(error)
        assert b.policy.limit is not None and b.policy.limit.limit == 4  # 8, halved
        assert p.outcomes["slowdown"] == 1  # one attempt: retrying is put's
    finally:
        b.close()


def test_a_stalled_quick_put_is_cancelled_as_transient(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    p.delay_s["PutObject"] = 4
    (tmp_path / "f").write_bytes(b"x" * 10)
    b = _backend(seaweed_bucket, url, read_timeout_s=1)
    d = _Done()
    try:
        started = time.monotonic()
        assert b.start_put("slow", str(tmp_path / "f"), 10, MD, None, d.for_key("slow"))
        d.wait(1, timeout_s=10)
        assert time.monotonic() - started < 3.5
        [(_, result, error)] = d.calls
        assert result is None and isinstance(error, Transient) and "no answer" in str(error)
    finally:
        b.close()


def _push(
    src: Path, b: S3Backend, catalog: Catalog, workers: int, stop: threading.Event | None = None
) -> PushResult:
    settings = PushSettings(sources=(str(src),), remote=b.url, workers=workers)
    return run_push(settings, b, catalog, NullReporter(), time.time_ns, stop=stop)


def _upload_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("hoard-upload")}


class _Counting(S3Backend):
    """The S3 backend, counting the uploads it started without waiting."""

    started = 0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.by_thread: Counter[str] = Counter()

    def start_put(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        ok = super().start_put(*args, **kwargs)
        self.started += ok
        self.by_thread[threading.current_thread().name] += ok
        return ok


def test_a_push_of_small_files_keeps_them_in_flight_from_one_thread(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    seen: set[str] = set()

    def decide(r: Request) -> str:
        seen.update(_upload_threads())
        return "pass"

    p.decide = decide
    p.delay_s["PutObject"] = 0.05
    src = make_tree(tmp_path / "src", {f"d{i % 4}/f{i:03d}": os.urandom(50) for i in range(80)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    policy = RetryPolicy(sleep=lambda s: None, limit=AdaptiveLimit(8))
    b = _Counting(seaweed_bucket, endpoint_url=url, path_style=True, policy=policy, workers=4)
    try:
        r = _push(src, b, catalog, workers=4)
    finally:
        b.close()
    assert r.outcome == "ok" and r.transfer.uploaded == 80
    assert p.count("PutObject") == 80 and p.max_in_flight["PutObject"] == 4
    # one thread of ours started them all (with a thread waiting for each, there were four),
    # most of them from the CRT's threads, as each PUT before them ended
    assert seen == {"hoard-upload_0"}
    assert b.started == 80 and b.by_thread["hoard-upload_0"] < 40
    assert len(catalog.objects_under(b.url, "")) == 80


def test_quick_puts_that_fail_are_made_again_waiting_and_a_large_file_waits_too(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy
    tried: set[str] = set()
    lock = threading.Lock()

    def decide(r: Request) -> str:
        if r.method != "PUT" or not r.path.rsplit("/", 1)[-1].startswith("f0"):
            return "pass"
        with lock:  # the first PUT of f000..f099 is reset or answered 500, by turns
            if r.path in tried:
                return "pass"
            tried.add(r.path)
            return "reset" if len(tried) % 2 else "internal"

    p.decide = decide
    files: dict[str, bytes | str] = {f"d{i % 3}/f{i:03d}": os.urandom(64) for i in range(150)}
    files["big.bin"] = os.urandom(9 << 20)  # above the CRT's single PUT: botocore, waiting
    src = make_tree(tmp_path / "src", files)
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    policy = RetryPolicy(sleep=lambda s: None, limit=AdaptiveLimit(8))
    b = _Counting(seaweed_bucket, endpoint_url=url, path_style=True, policy=policy, workers=4)
    try:
        r = _push(src, b, catalog, workers=4)
    finally:
        b.close()
    assert r.outcome == "ok", r.transfer.errors
    assert r.transfer.uploaded == 151 and r.transfer.failed == 0
    assert b.started == 150  # every small file, once; the large one and the retries waited
    puts = [q for q in p.requests if q.operation == "PutObject"]
    # the 100 failed quick attempts (never forwarded) were made once more, and nothing else
    assert p.outcomes["reset"] == p.outcomes["internal"] == 50 and len(puts) == 151
    assert [q.size for q in puts if not q.headers["user-agent"].startswith("hoard/")] == [9 << 20]
    s3 = boto3.client("s3", endpoint_url=seaweed_endpoint)
    for rel in ("d0/f000", "d1/f001", "big.bin"):
        body = s3.get_object(Bucket=seaweed_bucket, Key=rel)["Body"].read()
        assert body == (src / rel).read_bytes()
    assert len(catalog.objects_under(b.url, "")) == 151


def test_a_stop_lets_the_quick_puts_in_flight_finish_and_records_them(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy
    stop = threading.Event()

    def decide(r: Request) -> str:
        if r.method == "PUT" and p.count("PutObject") >= 10:
            stop.set()
        return "pass"

    p.decide = decide
    p.delay_s["PutObject"] = 0.3
    src = make_tree(tmp_path / "src", {f"d{i % 4}/f{i:03d}": str(i) for i in range(100)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    policy = RetryPolicy(sleep=lambda s: None, limit=AdaptiveLimit(8))
    b = _Counting(seaweed_bucket, endpoint_url=url, path_style=True, policy=policy, workers=4)
    try:
        r = _push(src, b, catalog, workers=4, stop=stop)
    finally:
        b.close()
    st = r.transfer
    assert b.started == p.count("PutObject")
    assert st.interrupted and r.outcome == "interrupted"
    stored = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=seaweed_endpoint)
        .list_objects_v2(Bucket=seaweed_bucket)
        .get("Contents", [])
    }
    # every PUT the store answered was waited for and recorded; nothing else was sent
    assert stored == {o.key for o in catalog.objects_under(b.url, "")}
    assert 10 <= len(stored) == st.uploaded == p.count("PutObject") < 100


def test_no_credentials_leaves_the_file_to_put_which_stops_the_run(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, url = proxy
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    uploads = _uploads(tmp_path / "src", 40)
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    b = _backend(seaweed_bucket, url, workers=4)
    d = _Done()
    try:
        f = uploads[0].file
        assert not b.start_put("f", f.path, f.size, MD, None, d.for_key("f"))
        assert b.policy.limit is not None and b.policy.limit.try_acquire()  # no slot kept
        b.policy.limit.release(throttled=False)
        # a rerun's first request can be an upload (no listing): the run stops there, as the
        # blocking put says why, instead of failing every file as an internal error
        st = execute(
            ([a] for a in uploads), b, catalog, lambda: catalog.start_job("push", {}, 0), None,
            4, NullReporter(), time.time_ns, lambda a: None,
        )  # fmt: skip
    finally:
        b.close()
    assert "Unable to locate credentials" in st.stopped_by, st
    assert st.uploaded == 0 and st.not_attempted >= 40 - 2 * 4
    assert d.calls == [] and p.requests == []

