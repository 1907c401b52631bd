"""Large ranged reads of the S3 backend go through http.client, signed by awscrt (s3_ranges): one
HTTP request each, seen by a proxy in front of SeaweedFS, with botocore's rules for errors,
RetryPolicy's retries, the read timeout, https with the configured CA bundle, and the move to
botocore when the bucket is in another region. A restore of large files makes no botocore
request at all."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import RetryPolicy
from hoard.errors import NotFound, Transient
from hoard.fetch import fetch
from tests.faultproxy import FaultProxy

MiB = 1 << 20
SIZE = 20 * MiB  # read as 9 MiB ranges: above s3_crt.SMALL_READ_BYTES, so through s3_ranges
RANGE = 9 * MiB


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def proxy(seaweed_endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:
        yield p, url


@pytest.fixture
def big(seaweed_endpoint: str, seaweed_bucket: str, data: bytes) -> str:
    boto3.client("s3", endpoint_url=seaweed_endpoint).put_object(
        Bucket=seaweed_bucket, Key="big/é b.bin", Body=data
    )
    return "big/é b.bin"


def _backend(bucket: str, url: str, **kw: object) -> S3Backend:
    policy = kw.pop("policy", None) or RetryPolicy(sleep=lambda s: None)
    return S3Backend(bucket, endpoint_url=url, path_style=True, policy=policy, **kw)  # type: ignore[arg-type]


def _gets(p: FaultProxy) -> list[tuple[str | None, str]]:
    return [(r.headers.get("range"), r.headers["user-agent"]) for r in p.requests]


def test_large_ranges_are_one_signed_get_each_and_hash_like_the_object(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str, data: bytes
) -> None:
    p, url = proxy
    b = _backend(seaweed_bucket, url)
    try:
        with open(tmp_path / "out", "w+b") as fh:
            digest = fetch(b, big, fh.fileno(), SIZE, "sha256", RANGE, 2)
        assert digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert (tmp_path / "out").read_bytes() == data
        assert b.crt_requests == 3  # fails if the reads silently went through botocore
        ranges = sorted(r for r, _ in _gets(p))
        assert ranges == [
            f"bytes=0-{RANGE - 1}",
            f"bytes={2 * RANGE}-{SIZE - 1}",
            f"bytes={RANGE}-{2 * RANGE - 1}",
        ]
        assert all(ua.startswith("hoard/") and "awscrt/" in ua for _, ua in _gets(p))
        with b.open(big, 5, RANGE) as stream:  # a connection left in the pool is used again
            assert stream.read() == data[5 : 5 + RANGE]
        with pytest.raises(NotFound, match="NoSuchKey"):
            b.open("no/such/key", 0, RANGE)
    finally:
        b.close()


@pytest.mark.parametrize("fault", ["slowdown", "reset"])
def test_throttling_and_resets_before_the_body_are_retried(
    proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str, data: bytes, fault: str
) -> None:
    p, url = proxy
    p.decide = lambda r: fault if p.outcomes[fault] < 1 else "pass"
    policy = RetryPolicy(sleep=lambda s: None)
    b = _backend(seaweed_bucket, url, policy=policy)
    try:
        with b.open(big, RANGE, RANGE) as stream:
            assert stream.read() == data[RANGE : 2 * RANGE]
        assert policy.retries == 1 and b.crt_requests == 2
        p.decide = lambda r: fault
        with pytest.raises(Transient, match="SlowDown" if fault == "slowdown" else "connection"):
            _backend(seaweed_bucket, url, policy=RetryPolicy(attempts=1)).open(big, 0, RANGE)
    finally:
        b.close()


def test_a_pooled_connection_the_store_dropped_is_replaced_without_a_retry(
    proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str, data: bytes
) -> None:
    p, url = proxy
    seen: list[str] = []

    def drop_second(r: object) -> str:
        seen.append("x")
        return "reset" if len(seen) == 2 else "pass"

    p.decide = drop_second  # the second request, on the first one's connection, is reset
    policy = RetryPolicy(sleep=lambda s: None)
    b = _backend(seaweed_bucket, url, policy=policy)
    try:
        for offset in (0, RANGE):
            with b.open(big, offset, RANGE) as stream:
                assert stream.read() == data[offset : offset + RANGE]
        assert len(seen) == 3 and p.outcomes["reset"] == 1 and policy.retries == 0
    finally:
        b.close()


def test_a_body_cut_short_is_transient_and_nothing_short_is_accepted(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str
) -> None:
    p, url = proxy
    p.decide = lambda r: "truncate"
    b = _backend(seaweed_bucket, url)
    try:
        with open(tmp_path / "out", "w+b") as fh, pytest.raises(Transient, match="broke"):
            fetch(b, big, fh.fileno(), SIZE, "sha256", RANGE, 1)
    finally:
        b.close()


def test_a_stalled_answer_times_out_as_transient(
    proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str
) -> None:
    p, url = proxy
    p.delay_s["GET"] = 4
    b = _backend(seaweed_bucket, url, policy=RetryPolicy(attempts=1), read_timeout_s=1)
    try:
        started = time.monotonic()
        with pytest.raises(Transient, match="no answer"):
            b.open(big, 0, RANGE)
        assert time.monotonic() - started < 3.5
    finally:
        b.close()


def test_a_bucket_in_another_region_moves_large_reads_to_botocore(
    tmp_path: Path, proxy: tuple[FaultProxy, str], seaweed_bucket: str, big: str, data: bytes
) -> None:
    p, url = proxy
    p.decide = lambda r: "wrong-region" if "awscrt/" in r.headers.get("user-agent", "") else "pass"
    b = _backend(seaweed_bucket, url)
    try:
        with open(tmp_path / "out", "w+b") as fh:
            digest = fetch(b, big, fh.fileno(), SIZE, "sha256", RANGE, 1)
        assert digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert b.crt_requests == 1 and p.outcomes["wrong-region"] == 1
        assert [ua.startswith("Botocore/") for _, ua in _gets(p)] == [True] * 3
    finally:
        b.close()


def test_https_verifies_the_store_with_the_configured_ca_bundle(
    tmp_path: Path,
    seaweed_endpoint: str,
    seaweed_bucket: str,
    big: str,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    p = FaultProxy(seaweed_endpoint, tls=tls)
    with p.running() as url:
        assert url.startswith("https://")
        b = _backend(seaweed_bucket, url, policy=RetryPolicy(attempts=1))
        try:  # without the bundle, the store's certificate is not trusted
            with pytest.raises(Transient, match="TLS"):
                b.open(big, 0, RANGE)
        finally:
            b.close()
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        b = _backend(seaweed_bucket, url)
        try:
            with b.open(big, RANGE, RANGE) as stream:
                assert stream.read() == data[RANGE : 2 * RANGE]
            assert b.crt_requests == 1 and "awscrt/" in _gets(p)[-1][1]
        finally:
            b.close()


PROBE = """
import atexit, runpy, sys
def report():
    print("MODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
atexit.register(report)
sys.argv = ["hoard", *sys.argv[1:]]
runpy.run_module("hoard", run_name="__main__")
"""


def test_a_restore_of_large_files_sends_nothing_through_botocore(
    tmp_path: Path, seaweed_endpoint: str, seaweed_bucket: str, data: bytes
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    (src / "more.bin").write_bytes(data[: 17 * MiB])
    cat = ["--catalog", str(tmp_path / "c.sqlite")]
    to = f"s3://{seaweed_bucket}/p"
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:  # the store's URL, as the catalog records it, is the proxy's
        common = ["--endpoint-url", url, "--path-style", *cat]
        pushed = subprocess.run(
            [sys.executable, "-m", "hoard", "push", str(src), "--to", to, *common, "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pushed.returncode == 0, pushed.stderr
        p.reset_counts()
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                PROBE,
                "restore",
                to,
                "--to",
                str(tmp_path / "out"),
                *common,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["restored"] == 2
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert (tmp_path / "out" / "more.bin").read_bytes() == data[: 17 * MiB]
    ranged = [ua for rng, ua in _gets(p) if rng]
    assert len(ranged) == 4  # 16 + 4 MiB and 16 + 1 MiB: two through s3_ranges, two the CRT's
    assert [r.method for r in p.requests] == ["GET"] * 5  # a listing, then the ranges
    assert all("awscrt/" in ua for _, ua in _gets(p))  # not one request through botocore
    modules = set(r.stderr.split("MODULES ", 1)[1].split())
    assert "hoard.backends.s3_ranges" in modules
    # the environment's credentials need no botocore session (s3_env), and no client is made
    assert "botocore.session" not in modules
    assert "botocore.client" not in modules
