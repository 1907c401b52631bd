"""Multipart uploads to S3: the steps ``parts.upload_in_parts`` runs for an S3Backend, and the
checksum its parts carry.

Parts carry CRC64NVME (``x-amz-checksum-crc64nvme``, about 30 times cheaper to compute than
MD5) where the store is shown to check it, else Content-MD5. The showing is a probe, once per
backend, before its first new upload: in an upload of its own (begun for the real key, then
aborted) one part is sent whose CRC64NVME is that of other bytes, by the path real parts take.
A store that refuses it (BadDigest; SeaweedFS does, as the tests show) gets CRC64NVME; one
that stores it (moto's server), or refuses the header or the algorithm, gets Content-MD5. An
upload keeps the algorithm it began with (its recorded parts name it, see ``parts``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from hoard.backends import parts
from hoard.backends.base import Journal, PartRecord, PutResult
from hoard.errors import BackendError, Transient

if TYPE_CHECKING:
    from hoard.backends.s3 import S3Backend

log = logging.getLogger("hoard.s3")

#: the part number of the one part the probe sends (in an upload of its own)
PROBE_PART = 10_000


class ChecksumMismatch(Transient):
    """The store refused a body that does not match the checksum sent with it (corrupted on
    the way): sent again."""


class Multipart:
    """The multipart uploads of one S3Backend (its botocore calls, retry policy, part sender)."""

    def __init__(self, backend: S3Backend) -> None:
        self._b = backend
        self._lock = threading.Lock()
        self._algorithm: str | None = None  # of new uploads' parts, once known

    def upload(
        self,
        key: str,
        fd: int,
        path: str,
        size: int,
        extra: dict[str, Any],
        tier: str,
        journal: Journal | None,
    ) -> PutResult:
        b = self._b

        def start(part_bytes: int, algorithm: str) -> str:
            more = {"ChecksumAlgorithm": "CRC64NVME"} if algorithm == "crc64nvme" else {}
            what = f"starting upload of {key}"
            resp = b._call(what, "create_multipart_upload", Key=key, **extra, **more)
            return str(resp["UploadId"])

        def send(upload_id: str, number: int, data: bytes, algorithm: str) -> PartRecord:
            value = parts.CHECKSUMS[algorithm](data)
            what = f"uploading part {number} of {key}"
            etag = b.policy.call(
                what, lambda: self._send_part(key, upload_id, number, data, algorithm, value, what)
            )
            return PartRecord(number, len(data), etag, f"{algorithm}:{value}")

        def complete(upload_id: str, done: list[PartRecord]) -> str:
            listed: list[dict[str, Any]] = []
            for p in done:
                algorithm, _, value = p.checksum.partition(":")
                entry: dict[str, Any] = {"PartNumber": p.number, "ETag": p.etag}
                if algorithm == "crc64nvme":
                    entry["ChecksumCRC64NVME"] = value
                listed.append(entry)
            resp = b._call(
                f"completing upload of {key}",
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )
            return str(resp.get("ETag", "")).strip('"')

        steps = parts.Steps(
            start=start,
            stored=lambda uid: self.list_parts(key, uid),
            abandon=lambda uid: b.abort_upload(key, uid),
            send=send,
            complete=complete,
            checksum=lambda: self.part_checksum(key),
        )
        up = parts.upload_in_parts(
            steps, b._sender, fd, path, key, size, b.part_size_for(size), journal
        )
        return PutResult(etag=up.etag, tier=tier, parts=up.parts, resumed_bytes=up.resumed_bytes)

    def _send_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        data: bytes,
        algorithm: str,
        value: str,
        what: str,
    ) -> str:
        """One UploadPart attempt with the part's checksum; returns the ETag as the store gave
        it. A store that answers with another checksum than the one sent has not stored these
        bytes: Transient, sent again."""
        kwargs = {"ContentMD5": value} if algorithm == "md5" else {"ChecksumCRC64NVME": value}
        resp = self._b._call_once(
            what, "upload_part", Key=key, UploadId=upload_id, PartNumber=number, Body=data, **kwargs
        )
        echoed = resp.get("ChecksumCRC64NVME")
        if algorithm != "md5" and echoed is not None and echoed != value:
            raise Transient(f"{what}: the store computed checksum {echoed}, not {value}")
        return str(resp["ETag"])

    def part_checksum(self, key: str) -> str:
        """The checksum new uploads' parts carry: "crc64nvme" where this store is shown (once
        per backend, see ``_checks_crc64nvme``) to refuse a part that does not match it, else
        "md5" (Content-MD5, which S3 stores have checked for long)."""
        with self._lock:
            if self._algorithm is None:
                self._algorithm = "crc64nvme" if self._checks_crc64nvme(key) else "md5"
                log.info(
                    "parts of multipart uploads carry %s checksums",
                    "CRC64NVME" if self._algorithm == "crc64nvme" else "Content-MD5",
                )
            return self._algorithm

    def _checks_crc64nvme(self, key: str) -> bool:
        """Whether the store verifies x-amz-checksum-crc64nvme: in an upload of its own (begun
        for ``key``, then aborted) a part is sent whose checksum is that of other bytes, by the
        path real parts take. A store that refuses it (BadDigest) checks; one that stores it,
        or does not know the header or the algorithm, gets Content-MD5 instead."""
        b = self._b
        what = f"checking whether the store verifies CRC64NVME checksums (upload of {key})"
        try:
            import awscrt.checksums  # noqa: F401 - computes them
        except ImportError:
            return False
        try:
            upload_id = b._call(
                what, "create_multipart_upload", Key=key, ChecksumAlgorithm="CRC64NVME"
            )["UploadId"]
        except BackendError as exc:
            if type(exc) is not BackendError:  # denied, unreachable, …: the real upload would be
                raise
            log.info("%s: %s", what, exc)
            return False
        wrong = parts.crc64nvme_b64(b"")

        def once() -> bool:
            try:
                self._send_part(key, upload_id, PROBE_PART, b"hoard", "crc64nvme", wrong, what)
            except ChecksumMismatch:
                return True
            return False

        try:
            return b.policy.call(what, once)
        except BackendError as exc:
            if type(exc) is not BackendError:
                raise
            log.info("%s: %s", what, exc)
            return False
        finally:
            try:
                b.abort_upload(key, upload_id)
            except BackendError as exc:
                log.warning("%s: could not abort upload %s: %s", what, upload_id, exc)

    def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[int, str]]:
        b = self._b
        found: dict[int, tuple[int, str]] = {}
        marker = 0
        while True:
            page = b._call(
                f"listing parts of {key}",
                "list_parts",
                Key=key,
                UploadId=upload_id,
                PartNumberMarker=marker,
                MaxParts=1000,
            )
            for p in page.get("Parts", []):
                found[int(p["PartNumber"])] = (int(p["Size"]), p["ETag"])
            if not page.get("IsTruncated"):
                return found
            marker = int(page["NextPartNumberMarker"])
