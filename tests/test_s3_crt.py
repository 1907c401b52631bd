"""The S3 backend's small-object data path through awscrt: single PUTs and small ranged GETs go
through the CRT (one HTTP request each, seen by a proxy in front of SeaweedFS), and behave as the
botocore path does — the same ETag, metadata and tier, the same errors, RetryPolicy's retries."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from hoard.backends import s3_crt
from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import RetryPolicy
from hoard.errors import BucketNotFound, CredentialsRejected, NotFound, Transient, Unreachable
from tests.conftest import free_port
from tests.faultproxy import FaultProxy, Request

MD = {"hoard-hash": "blake3:abc", "hoard-path": "photos/%C3%A9t%C3%A9.jpg"}


@pytest.fixture
def proxy(seaweed_endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:
        yield p, url


def _file(tmp_path: Path, data: bytes, name: str = "f.bin") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _backend(bucket: str, url: str, **kw: object) -> S3Backend:
    policy = kw.pop("policy", None) or RetryPolicy(sleep=lambda s: None)
    return S3Backend(bucket, endpoint_url=url, path_style=True, policy=policy, **kw)  # type: ignore[arg-type]


def test_a_small_put_is_one_crt_request_with_md5_metadata_and_tier(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy
    data = os.urandom(4096)
    b = _backend(seaweed_bucket, url)
    try:
        result = b.put("a/é t+=.bin", _file(tmp_path, data), len(data), MD, "standard_ia")
        assert b.crt_requests == 1  # fails if the CRT path is silently not used
        [put] = p.requests
        assert put.operation == "PutObject" and put.size == len(data)
        assert put.headers["user-agent"].startswith("hoard/") and "awscrt/" in put.headers[
            "user-agent"]
        assert put.headers["content-md5"]
        assert put.headers["x-amz-meta-hoard-hash"] == "blake3:abc"
        assert put.headers["x-amz-storage-class"] == "STANDARD_IA"
        assert result.etag == hashlib.md5(data).hexdigest() and result.tier == "standard_ia"
        info = b.stat("a/é t+=.bin")  # HEAD goes through botocore
        assert (info.etag, info.tier, dict(info.metadata)) == (result.etag, "standard_ia", MD)
        raw = boto3.client("s3", endpoint_url=seaweed_endpoint).get_object(
            Bucket=seaweed_bucket, Key="a/é t+=.bin")
        assert raw["Body"].read() == data
    finally:
        b.close()


def test_many_crt_clients_in_one_process_keep_a_bounded_number_of_thread_states(
    tmp_path: Path, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    """The CRT threads keep their Python thread state (no state made and freed per callback);
    clients that come and go (a daemon's runs) do not add states without end."""
    from concurrent.futures import ThreadPoolExecutor

    files = [_file(tmp_path, os.urandom(100 + i), f"f{i}") for i in range(12)]
    for run in range(8):
        b = _backend(seaweed_bucket, seaweed_endpoint)
        try:
            keys = [f"k/{run}/{Path(f).name}" for f in files]
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(b.put, keys, files, [os.path.getsize(f) for f in files],
                              [MD] * len(files), [None] * len(files)))
            assert b.crt_requests == len(files)
        finally:
            b.close()
        assert 0 < len(s3_crt._KEPT) <= s3_crt.KEEP_STATES_AT_MOST
    listed = boto3.client("s3", endpoint_url=seaweed_endpoint).list_objects_v2(
        Bucket=seaweed_bucket, Prefix="k/")
    assert listed["KeyCount"] == 8 * len(files)


def test_small_ranged_reads_go_through_the_crt(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    data = bytes(range(256)) * 64
    b = _backend(seaweed_bucket, url)
    try:
        b.put("r.bin", _file(tmp_path, data), len(data), {}, None)
        with b.open("r.bin", 100, 5000) as stream:
            assert stream.read() == data[100:5100]
        assert b.crt_requests == 2
        assert [r.headers.get("range") for r in p.requests if r.method == "GET"] == [
            "bytes=100-5099"]
        with pytest.raises(NotFound):
            b.open("no/such/key", 0, 10)
    finally:
        b.close()


def test_a_missing_bucket_is_bucket_not_found_through_the_crt(
    tmp_path: Path, moto_endpoint: str
) -> None:
    b = _backend("hoard-no-such-bucket-crt", moto_endpoint)
    try:
        with pytest.raises(BucketNotFound, match="NoSuchBucket"):
            b.put("k", _file(tmp_path, b"x"), 1, {}, None)
        assert b.crt_requests == 1
    finally:
        b.close()


def test_a_corrupted_body_is_refused_with_bad_digest_and_sent_again(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    seen: list[str] = []

    def corrupt_first(req: Request) -> str:
        seen.append(req.operation)
        return "corrupt" if len(seen) == 1 else "pass"

    p.decide = corrupt_first
    policy = RetryPolicy(sleep=lambda s: None)
    b = _backend(seaweed_bucket, url, policy=policy)
    try:
        data = b"small file " * 100
        b.put("s.txt", _file(tmp_path, data), len(data), {}, None)
        assert [(op, status) for op, status, body in p.statuses if b"BadDigest" in body] == [
            ("PutObject", 400)]
        assert policy.retries == 1 and b.crt_requests == 2
        with b.open("s.txt", 0, len(data)) as stream:
            assert stream.read() == data
    finally:
        b.close()


@pytest.mark.parametrize("fault", ["slowdown", "reset"])
def test_throttling_and_resets_are_transient_and_retried(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, fault: str
) -> None:
    p, url = proxy
    p.decide = lambda r: fault if r.method == "PUT" else "pass"
    b = _backend(seaweed_bucket, url, policy=RetryPolicy(attempts=1))
    try:
        with pytest.raises(Transient) as err:
            b.put("t", _file(tmp_path, b"x" * 100), 100, {}, None)
        if fault == "slowdown":
            assert "SlowDown" in str(err.value)
        p.decide = lambda r: fault if r.method == "PUT" and p.outcomes[fault] < 2 else "pass"
        policy = RetryPolicy(sleep=lambda s: None)
        b2 = _backend(seaweed_bucket, url, policy=policy)
        try:
            b2.put("t", _file(tmp_path, b"x" * 100), 100, {}, None)
            assert policy.retries == 1 and b2.crt_requests == 2
        finally:
            b2.close()
    finally:
        b.close()


def test_a_stalled_request_times_out_as_transient(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    p.delay_s["PutObject"] = 4
    b = _backend(seaweed_bucket, url, policy=RetryPolicy(attempts=1), read_timeout_s=1)
    try:
        started = time.monotonic()
        with pytest.raises(Transient, match="no answer"):
            b.put("slow", _file(tmp_path, b"x" * 10), 10, {}, None)
        assert time.monotonic() - started < 3.5
    finally:
        b.close()


def test_an_empty_file_is_one_put_too(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    p, url = proxy
    b = _backend(seaweed_bucket, url)
    try:
        result = b.put("empty", _file(tmp_path, b""), 0, {"hoard-hash": "h"}, None)
        assert result.etag == hashlib.md5(b"").hexdigest() and b.crt_requests == 1
        assert [(r.operation, r.size) for r in p.requests] == [("PutObject", 0)]
        info = b.stat("empty")
        assert (info.size, info.etag, dict(info.metadata)) == (0, result.etag, {"hoard-hash": "h"})
    finally:
        b.close()


def test_a_wrong_secret_is_credentials_rejected(
    tmp_path: Path, seaweed_bucket: str, seaweed_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    b = _backend(seaweed_bucket, seaweed_endpoint)
    try:
        with pytest.raises(CredentialsRejected, match="SignatureDoesNotMatch"):
            b.put("k", _file(tmp_path, b"x"), 1, {}, None)
        assert b.crt_requests == 1 and CredentialsRejected("x").stops_run
    finally:
        b.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_unreachable_endpoint_fails_fast_and_clearly(tmp_path: Path, scheme: str) -> None:
    b = _backend("some-bucket", f"{scheme}://127.0.0.1:{free_port()}",
                 policy=RetryPolicy(attempts=2, sleep=lambda s: None))
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable) as err:
            b.put("k", _file(tmp_path, b"x"), 1, {}, None)
        assert time.monotonic() - started < 20
        assert "127.0.0.1" in str(err.value) and err.value.stops_run
        assert b.crt_requests == 2  # Unreachable is Transient: retried once, as with botocore
    finally:
        b.close()


def test_without_awscrt_the_backend_stays_on_botocore(
    tmp_path: Path, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    code = (
        "import logging, sys; sys.modules['awscrt'] = None\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from hoard.backends.s3 import S3Backend\n"
        f"b = S3Backend({seaweed_bucket!r}, endpoint_url={seaweed_endpoint!r})\n"
        f"r = b.put('k', {_file(tmp_path, b'abc')!r}, 3, {{'hoard-hash': 'h'}}, None)\n"
        "assert b.crt_requests == 0 and r.etag == '900150983cd24fb0d6963f7d28e17f72'\n"
        "assert b.open('k', 0, 3).read() == b'abc'\n"
        "b.close()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "awscrt cannot be imported" in r.stderr and "go through botocore" in r.stderr


def test_endpoints_follow_botocore_addressing_rules() -> None:
    cases = [  # (bucket, endpoint_url, region, path_style) -> the URL botocore sends to
        (("bucket", "http://127.0.0.1:9000", "us-east-1", False),
         "http://127.0.0.1:9000/bucket/a%20b/%C3%A9"),
        (("bucket", "http://minio.lan:9000", "eu-west-1", False),
         "http://minio.lan:9000/bucket/a%20b/%C3%A9"),
        (("bucket", "https://minio.lan:9000/base/", "eu-west-1", True),
         "https://minio.lan:9000/base/bucket/a%20b/%C3%A9"),
        (("my.dotted.bucket", None, "eu-west-1", False),
         "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/a%20b/%C3%A9"),
        (("photos", None, "eu-west-1", False), "https://photos.s3.eu-west-1.amazonaws.com/a%20b/%C3%A9"),
        (("photos", None, "us-east-1", False), "https://photos.s3.amazonaws.com/a%20b/%C3%A9"),
        (("photos", None, "us-east-1", True), "https://s3.amazonaws.com/photos/a%20b/%C3%A9"),
    ]
    for args, url in cases:
        e = s3_crt.endpoint_for(*args)
        assert f"{e.scheme}://{e.host}{e.path('a b/é')}" == url
    # botocore itself sends these requests to the same URLs
    import boto3
    from botocore.config import Config

    class Sent(Exception):
        pass

    def stop(request: object, **_: object) -> None:
        raise Sent(request.url)  # type: ignore[attr-defined]

    for (bucket, endpoint_url, region, path_style), url in cases:
        c = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                         aws_access_key_id="x", aws_secret_access_key="y",
                         config=Config(s3={"addressing_style": "path" if path_style else "auto"}))
        c.meta.events.register("before-send", stop)
        with pytest.raises(Sent) as sent:
            c.put_object(Bucket=bucket, Key="a b/é", Body=b"x")
        assert str(sent.value) == url


def test_a_proxy_or_a_configured_endpoint_keeps_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert s3_crt.needs_botocore({}, None) is None
    assert s3_crt.needs_botocore({"endpoint_url": "http://x"}, None)
    assert s3_crt.needs_botocore({"endpoint_url": "http://x"}, "http://y") is None
    # the AWS CLI's transfer settings and an addressing style (hoard sets its own) keep the CRT
    cli = {"max_concurrent_requests": "16", "multipart_threshold": "64MB",
           "addressing_style": "path"}
    assert s3_crt.needs_botocore({"s3": cli}, None) is None
    assert s3_crt.needs_botocore({"s3": {**cli, "use_accelerate_endpoint": "true"}}, None) == (
        "the AWS config's s3 section sets use_accelerate_endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert s3_crt.configured_endpoint(None) == "http://127.0.0.1:1"
    assert s3_crt.configured_endpoint("http://o") == "http://o"
    # botocore reads this from the config where the environment does not say: it may then not
    # go where $AWS_ENDPOINT_URL says
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    ignoring = {"ignore_configured_endpoint_urls": "true"}
    assert s3_crt.needs_botocore(ignoring, "http://127.0.0.1:1") == (
        "the AWS config sets ignore_configured_endpoint_urls")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false")
    assert s3_crt.needs_botocore(ignoring, "http://127.0.0.1:1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert s3_crt.needs_botocore({}, "http://y") == "$HTTPS_PROXY is set"


HOSTILE_KEYS = ["a b/c+d=e.txt", "p%20q", "é/ü/ß.jpg", "x:y", "amp&lt;", "tab\tkey", "ctl\x01x",
                "日本/写真.png", "plus+plus", "z/last"]


@pytest.mark.parametrize("server", ["seaweed", "moto"])
def test_a_listing_through_the_crt_is_the_listing_botocore_reads(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    """Page by page (2 keys a page), keys XML cannot carry included: the same objects, sizes,
    ETags, tiers and times as botocore's ListObjectsV2 gives."""
    endpoint = request.getfixturevalue(f"{server}_endpoint")
    bucket = request.getfixturevalue("seaweed_bucket" if server == "seaweed" else "s3_bucket")
    p = FaultProxy(endpoint)
    with p.running() as url:
        b = _backend(bucket, url)
        try:
            src = _file(tmp_path, b"12345")
            for key in HOSTILE_KEYS:
                b.put(f"pre/{key}", src, 5, {}, "standard_ia" if key == "x:y" else None)
            b.put("other/k", src, 5, {}, None)
            b.list_page_size = 2
            before = b.crt_requests
            listed = list(b.list("pre/"))
            assert b.crt_requests - before == 5  # 10 keys, 2 a page: every page via the CRT
            lists = [r for r in p.requests if r.method == "GET" and "list-type" in r.query]
            assert len(lists) == 5 and all("awscrt/" in r.headers["user-agent"] for r in lists)
            raw = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(
                Bucket=bucket, Prefix="pre/")["Contents"]
            expected = [(o["Key"], o["Size"], o["ETag"].strip('"'),
                         int(o["LastModified"].timestamp() * 1e9)) for o in raw]
            assert [(o.key, o.size, o.etag, o.modified_ns) for o in listed] == expected
            assert sorted(o.key for o in listed) == sorted(f"pre/{k}" for k in HOSTILE_KEYS)
            assert {o.key: o.tier for o in listed}["pre/x:y"] == "standard_ia"
            assert [o.key for o in b.list("nothing/")] == []
        finally:
            b.close()


def test_a_bucket_in_another_region_moves_the_run_to_botocore(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str
) -> None:
    """The CRT path does not follow a bucket to its region as botocore does: the first such
    answer moves every request of the run to botocore, and the upload still succeeds."""
    p, url = proxy
    p.decide = lambda r: "wrong-region" if "awscrt/" in r.headers.get("user-agent", "") else "pass"
    b = _backend(seaweed_bucket, url)
    try:
        src = _file(tmp_path, b"abc")
        assert b.put("k1", src, 3, {}, None).etag == hashlib.md5(b"abc").hexdigest()
        assert b.crt_requests == 1  # the CRT's PUT, answered "wrong region"
        b.put("k2", src, 3, {}, None)
        assert [o.key for o in b.list()] == ["k1", "k2"]
        with b.open("k2", 0, 3) as stream:
            assert stream.read() == b"abc"
        assert b.crt_requests == 1  # nothing went through the CRT after that
        assert p.outcomes["wrong-region"] == 1
    finally:
        b.close()


def test_a_wrong_region_through_botocore_stops_the_run_with_a_hint() -> None:
    from hoard.backends.s3_errors import error_for_code
    from hoard.errors import WrongRegion

    exc = error_for_code("AuthorizationHeaderMalformed", 400, "the region 'us-east-1' is wrong;"
                         " expecting 'eu-west-1'", "uploading k")
    assert isinstance(exc, WrongRegion) and exc.stops_run and "--region" in (WrongRegion.__doc__
                                                                             or "")
    assert isinstance(error_for_code("PermanentRedirect", 301, "", "listing"), WrongRegion)
