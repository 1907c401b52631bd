"""Listing an S3 prefix through the CRT data path: page by page, every key as it was written
(spaces, `+`, `%`, `?`, non-ASCII), the same objects botocore's listing gives, with the same
errors and retries, and without making a botocore client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import RetryPolicy
from hoard.errors import BucketNotFound, CredentialsRejected
from tests.faultproxy import FaultProxy, Request

KEYS = [
    "a b/c+d.txt",
    "a b/é ü.txt",
    "a b/x%20y",
    "a b/q?=&.bin",
    "a b/~tilde",
    "a b/n/deep/er.txt",
    "other/z",
] + [f"a b/n{i:03d}" for i in range(12)]


@pytest.fixture
def proxy(seaweed_endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:
        yield p, url


def _listing(r: Request) -> bool:
    return r.method == "GET" and "list-type" in r.query


def test_a_prefix_is_listed_page_by_page_through_the_crt_as_botocore_lists_it(
    proxy: tuple[FaultProxy, str], seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    p, url = proxy
    raw = boto3.client("s3", endpoint_url=seaweed_endpoint)
    for key in KEYS:
        raw.put_object(Bucket=seaweed_bucket, Key=key, Body=key.encode())
    b = S3Backend(seaweed_bucket, endpoint_url=url, path_style=True)
    b.list_page_size = 5
    try:
        got = list(b.list("a b/"))
        assert [o.key for o in got] == sorted(k for k in KEYS if k.startswith("a b/"))
        assert [o.size for o in got] == [len(o.key.encode()) for o in got]
        assert all(o.tier == "standard" and o.warm and o.etag for o in got)
        pages = [r for r in p.requests if _listing(r)]
        assert len(pages) == 4 and b.crt_requests == 4  # 18 keys, 5 a page
        assert all("awscrt/" in r.headers["user-agent"] for r in pages)
        assert b._shared_client is None  # no botocore client was made to list
        assert got == list(b._list_botocore("a b/"))  # modified_ns and etag included
        assert list(b.list("nothing/here/")) == []
    finally:
        b.close()


def test_listing_errors_and_retries_are_those_of_the_botocore_path(
    seaweed_endpoint: str, seaweed_bucket: str
) -> None:
    slow = {"n": 0}

    def decide(r: Request) -> str:
        if _listing(r) and slow["n"] < 2:
            slow["n"] += 1
            return "slowdown"
        return "pass"

    p = FaultProxy(seaweed_endpoint, decide=decide)
    with p.running() as url:
        b = S3Backend(
            seaweed_bucket, endpoint_url=url, path_style=True,
            policy=RetryPolicy(sleep=lambda s: None),
        )  # fmt: skip
        try:
            assert list(b.list("none/")) == []
            assert p.outcomes["slowdown"] == 2  # retried by RetryPolicy, as any request
        finally:
            b.close()
        missing = S3Backend("no-such-bucket-here", endpoint_url=url, path_style=True)
        try:
            with pytest.raises(BucketNotFound, match="listing s3://no-such-bucket-here/x/"):
                list(missing.list("x/"))
        finally:
            missing.close()


def test_a_listing_reads_nothing_until_iterated_and_lets_no_sdk_error_out(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials that cannot be had (a failing credential_process) surface as hoard's
    CredentialsRejected when the listing is read, as on the botocore path, not as a botocore
    exception when list() is called."""

    config = tmp_path / "aws-config"
    config.write_text("[profile broken]\ncredential_process = /bin/false\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    b = S3Backend(s3_bucket, endpoint_url=moto_endpoint, path_style=True, profile="broken")
    try:
        pages = b.list("x/")  # nothing is asked yet
        with pytest.raises(CredentialsRejected):
            next(pages)
    finally:
        b.close()
