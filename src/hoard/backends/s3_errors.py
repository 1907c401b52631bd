"""S3 error answers and botocore's exceptions as hoard's errors: the same rules for botocore's
``ClientError`` and for the CRT path's responses (``s3_crt``)."""

from __future__ import annotations

from botocore import exceptions as bexc

from hoard.backends.s3_parts import ChecksumMismatch
from hoard.errors import (
    BackendError,
    BucketNotFound,
    CredentialsRejected,
    NotFound,
    NotWarm,
    ObjectChanged,
    PermissionDenied,
    Transient,
    Unreachable,
    WrongRegion,
)

_THROTTLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "TooManyRequests",
    "RequestLimitExceeded",
    "InternalError",
    "ServiceUnavailable",
    "XAmzContentSHA256Mismatch",
    "RequestTimeTooSkewed",
}
#: a body that does not match its Content-MD5 or x-amz-checksum-* (MinIO's name for the latter)
_MISMATCH = {"BadDigest", "XAmzContentChecksumMismatch"}
_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
}


def error_for_code(code: str, status: int, message: str, what: str) -> Exception:
    """An S3 error answer (its XML Code, HTTP status and Message) as hoard's error; the same
    rules for botocore's ClientError and for the CRT path's responses."""
    detail = f"{what}: {code or status} {message}".rstrip()
    if code in _MISMATCH:
        return ChecksumMismatch(detail)
    if code == "NoSuchBucket":
        return BucketNotFound(detail)
    if code in ("NoSuchKey", "NotFound", "404", "NoSuchUpload"):
        return NotFound(detail)
    if (
        code == "PermanentRedirect"
        or status == 301
        or (code == "AuthorizationHeaderMalformed" and "region" in message.lower())
    ):
        return WrongRegion(detail)
    if code in _CREDENTIALS:
        return CredentialsRejected(detail)
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return PermissionDenied(detail)
    if code in ("PreconditionFailed", "412"):
        return ObjectChanged(detail)
    if code == "InvalidObjectState":
        return NotWarm(detail)
    if code in _THROTTLE or status in (429, 500, 502, 503, 504):
        return Transient(detail)
    return BackendError(detail)


def translate(exc: Exception, what: str) -> Exception:
    """Map a botocore/boto3 exception to hoard's error tree."""
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_for_code(str(err.get("Code", "")), status, str(err.get("Message", "")), what)
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectTimeoutError):
        return Unreachable(f"{what}: {exc}")
    credentials = (
        bexc.NoCredentialsError,
        bexc.PartialCredentialsError,
        bexc.CredentialRetrievalError,
    )
    if isinstance(exc, credentials):
        return CredentialsRejected(f"{what}: {exc}")
    transient = (
        bexc.HTTPClientError,
        bexc.ConnectionError,
        bexc.ResponseStreamingError,
        bexc.IncompleteReadError,
    )
    if isinstance(exc, transient):  # resets, closed connections, timeouts mid-request
        return Transient(f"{what}: {exc}")
    if isinstance(exc, bexc.BotoCoreError):
        return BackendError(f"{what}: {exc}")
    return exc
