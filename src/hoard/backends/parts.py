"""Resumable uploads in parts, for any store that takes an object in parts (S3 multipart
uploads, Azure block blobs). The store supplies five small steps; this module decides what to
resume, proves each recorded part still matches the file, sends the rest in parallel with
bounded memory, and completes.

A resumed part counts only if the store still holds it (same size and tag) *and* the local
bytes still hash to the checksum recorded when the store accepted it — so nothing is ever
completed with a part that does not match the file.

Every part carries a checksum the store verifies: Content-MD5 unless the store offers a cheaper
one it is shown to check (``Steps.checksum``; S3's CRC64NVME, ~30x faster than MD5). One upload
keeps one algorithm from start to end, as S3 requires; its recorded parts name it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import BinaryIO

from hoard.backends.base import Journal, PartRecord
from hoard.errors import NotFound, SourceUnreadable

MiB = 1 << 20
log = logging.getLogger("hoard.parts")


#: hashlib lets other threads run while it hashes this many bytes or more at once; for a small
#: body that hand-off of the GIL costs more than the hashing, so it is fed in smaller pieces
_GIL_FREE_BYTES = 2047
_SMALL_BODY_BYTES = 16 << 10


def md5_b64(data: bytes) -> str:
    h = hashlib.md5(usedforsecurity=False)
    if len(data) <= _SMALL_BODY_BYTES:
        view = memoryview(data)
        for at in range(0, len(data), _GIL_FREE_BYTES):
            h.update(view[at : at + _GIL_FREE_BYTES])
    else:
        h.update(data)
    return base64.b64encode(h.digest()).decode()


def crc64nvme_b64(data: bytes) -> str:
    """The CRC64NVME of ``data`` as S3 writes it (big-endian, base64)."""
    from awscrt import checksums

    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


#: the checksums a part can carry, by the name its record gives (``PartRecord.checksum``)
CHECKSUMS: dict[str, Callable[[bytes], str]] = {"md5": md5_b64, "crc64nvme": crc64nvme_b64}


def checksum(algorithm: str, data: bytes) -> str:
    """``data``'s checksum as a part record holds it: ``ALGO:BASE64``."""
    return f"{algorithm}:{CHECKSUMS[algorithm](data)}"


def algorithm_of(record_checksum: str) -> str:
    return record_checksum.partition(":")[0]


def _md5_only() -> str:
    return "md5"


def pread(fd: int, n: int, offset: int, path: str) -> bytes:
    chunks = []
    while n > 0:
        try:
            chunk = os.pread(fd, min(n, 64 * MiB), offset)
        except OSError as exc:
            raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def read_at_most(fh: BinaryIO, n: int, path: str) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the file (``fh`` may be unbuffered)."""
    try:
        data = fh.read(n)
        while 0 < len(data) < n and (more := fh.read(n - len(data))):
            data += more
        return data
    except OSError as exc:
        raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None


def part_size_for(size: int, preferred: int, max_parts: int, min_part: int) -> int:
    """``preferred`` unless that needs more than ``max_parts`` parts (rounded up to a MiB)."""
    need = math.ceil(size / max_parts) if size else 0
    return max(preferred, min_part, math.ceil(need / MiB) * MiB)


@dataclass(frozen=True)
class Steps:
    """What a store does for an upload in parts. ``stored`` returns {number: (size, tag)} for
    an upload the store knows, and raises NotFound for one it forgot. ``checksum`` names the
    algorithm (a key of CHECKSUMS) the parts of a new upload carry; ``start`` and ``send`` are
    given the upload's algorithm, and ``send`` returns a record with that checksum."""

    start: Callable[[int, str], str]  # part size, algorithm → upload id
    stored: Callable[[str], Mapping[int, tuple[int, str]]]
    abandon: Callable[[str], None]  # upload id → discard it on the store
    # upload id, number, bytes, algorithm → stored part
    send: Callable[[str, int, bytes, str], PartRecord]
    complete: Callable[[str, list[PartRecord]], str]  # → the object's etag
    checksum: Callable[[], str] = _md5_only


@dataclass(frozen=True)
class Uploaded:
    etag: str
    parts: int
    resumed_bytes: int


class PartSender:
    """Sends parts ``workers`` at a time, with at most 2 × workers parts held in memory."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._slots = threading.BoundedSemaphore(2 * self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="hoard-part")
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def send(
        self,
        steps: Steps,
        upload_id: str,
        fd: int,
        path: str,
        size: int,
        part_bytes: int,
        numbers: list[int],
        journal: Journal | None,
        algorithm: str = "md5",
    ) -> dict[int, PartRecord]:
        def one(number: int, data: bytes) -> PartRecord:
            record = steps.send(upload_id, number, data, algorithm)
            if journal is not None:
                journal.part_done(record)
            return record

        futures: list[Future[PartRecord]] = []
        try:
            for n in numbers:
                if any(f.done() and f.exception() for f in futures):
                    break  # a part failed for good: stop reading more
                offset = (n - 1) * part_bytes
                length = min(part_bytes, size - offset)
                self._slots.acquire()
                try:
                    data = pread(fd, length, offset, path)
                    if len(data) != length:
                        raise SourceUnreadable(f"{path}: the file shrank while it was uploaded")
                    fut = self._executor().submit(one, n, data)
                except BaseException:
                    self._slots.release()
                    raise
                fut.add_done_callback(lambda _f: self._slots.release())
                futures.append(fut)
        finally:
            wait(futures)
        return {rec.number: rec for rec in (f.result() for f in futures)}


def upload_in_parts(
    steps: Steps,
    sender: PartSender,
    fd: int,
    path: str,
    key: str,
    size: int,
    part_bytes: int,
    journal: Journal | None,
) -> Uploaded:
    """Resume the journaled upload of this file if it still can be, else start one; send the
    missing parts; complete. Without a journal a failed upload is abandoned on the store."""
    resumed = _resume(steps, fd, path, key, journal) if journal is not None else None
    if resumed is None:
        algorithm = steps.checksum()
        upload_id = steps.start(part_bytes, algorithm)
        if journal is not None:
            journal.started(upload_id, part_bytes)
        kept: dict[int, PartRecord] = {}
    else:
        upload_id, part_bytes, kept, algorithm = resumed
        if journal is not None:
            journal.resumed(sum(p.size for p in kept.values()))
    count = max(1, math.ceil(size / part_bytes))
    try:
        done = {
            **kept,
            **sender.send(
                steps,
                upload_id,
                fd,
                path,
                size,
                part_bytes,
                [n for n in range(1, count + 1) if n not in kept],
                journal,
                algorithm,
            ),
        }
        etag = steps.complete(upload_id, [done[n] for n in sorted(done)])
    except BaseException:
        if journal is None:
            steps.abandon(upload_id)
        raise
    if journal is not None:
        journal.finished()
    return Uploaded(etag, len(done), sum(p.size for p in kept.values()))


def _resume(
    steps: Steps, fd: int, path: str, key: str, journal: Journal
) -> tuple[str, int, dict[int, PartRecord], str] | None:
    """The upload to go on with, its part size, the parts kept and their checksum algorithm;
    None to start afresh (the old upload abandoned): the file changed, the store forgot the
    upload, no recorded part still matches, or the parts carry a checksum this run would not
    send (a store shown not to check CRC64NVME gets no more parts with it)."""
    state = journal.previous()
    if state is None:
        return None
    algorithms = {algorithm_of(rec.checksum) for rec in state.parts.values()}
    algorithm = algorithms.pop() if len(algorithms) == 1 else "md5"
    why = ""
    if not state.same_source:
        why = f"{path} changed since its upload began"
    elif not state.parts:
        why = f"no part of {key} was recorded"
    elif algorithms or algorithm not in CHECKSUMS:
        why = f"the recorded parts of {key} carry mixed or unknown checksums"
    elif algorithm != "md5" and algorithm != steps.checksum():
        why = f"the store does not check the {algorithm} checksums the parts of {key} carry"
    if why:
        log.info("%s; starting %s afresh", why, key)
        steps.abandon(state.upload_id)
        journal.finished()
        return None
    try:
        stored = steps.stored(state.upload_id)
    except NotFound:
        log.info("the store no longer knows upload %s of %s; starting afresh", state.upload_id, key)
        journal.finished()
        return None
    kept = {}
    for n, rec in sorted(state.parts.items()):
        if stored.get(n) != (rec.size, rec.etag):
            continue
        local = pread(fd, rec.size, (n - 1) * state.part_bytes, path)
        if checksum(algorithm, local) == rec.checksum:
            kept[n] = rec
        else:
            log.info("part %d of %s differs from the local bytes; sending it again", n, key)
    if not kept:
        log.info("no stored part of %s still matches; starting afresh", key)
        steps.abandon(state.upload_id)
        journal.finished()
        return None
    return state.upload_id, state.part_bytes, kept, algorithm
