"""botocore's own exceptions become hoard's error tree; nothing from the SDK leaves backends/."""

from __future__ import annotations

import pytest
from botocore import exceptions as bexc

from hoard.backends.s3_errors import translate
from hoard.backends.s3_parts import ChecksumMismatch
from hoard.errors import (
    BackendError,
    BucketNotFound,
    CredentialsRejected,
    NotFound,
    NotWarm,
    PermissionDenied,
    Transient,
    Unreachable,
)


def client_error(code: str, status: int) -> bexc.ClientError:
    return bexc.ClientError({"Error": {"Code": code, "Message": "m"},
                             "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("SlowDown", 503, Transient),
    ("InternalError", 500, Transient),
    ("", 429, Transient),
    ("RequestTimeout", 400, Transient),
    ("BadDigest", 400, ChecksumMismatch),  # a Transient: sent again
    ("XAmzContentChecksumMismatch", 400, ChecksumMismatch),
    ("NoSuchBucket", 404, BucketNotFound),
    ("NoSuchKey", 404, NotFound),
    ("404", 404, NotFound),
    ("AccessDenied", 403, PermissionDenied),
    ("InvalidAccessKeyId", 403, CredentialsRejected),
    ("SignatureDoesNotMatch", 403, CredentialsRejected),
    ("InvalidObjectState", 403, NotWarm),
    ("InvalidArgument", 400, BackendError),
])
def test_client_errors(code: str, status: int, expected: type[Exception]) -> None:
    err = translate(client_error(code, status), "uploading k")
    assert type(err) is expected
    assert issubclass(ChecksumMismatch, Transient)
    assert "uploading k" in str(err)


def test_connection_errors() -> None:
    assert isinstance(translate(bexc.EndpointConnectionError(endpoint_url="http://x"), "w"),
                      Unreachable)
    assert isinstance(translate(bexc.ConnectionClosedError(endpoint_url="http://x"), "w"),
                      Transient)
    assert isinstance(translate(bexc.ReadTimeoutError(endpoint_url="http://x"), "w"), Transient)
    assert isinstance(translate(bexc.NoCredentialsError(), "w"), CredentialsRejected)
    assert CredentialsRejected("x").stops_run and Unreachable("x").stops_run
    assert not Transient("x").stops_run
