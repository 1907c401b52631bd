"""Resumable uploads in parts, for any store that takes an object in parts (S3 multipart
uploads, Azure block blobs). The store supplies five small steps; this module decides what to
resume, proves each recorded part still matches the file, sends the rest in parallel with
bounded memory, and completes.

A resumed part counts only if the store still holds it (same size and tag) *and* the local
bytes still hash to the checksum recorded when the store accepted it — so nothing is ever
completed with a part that does not match the file.
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


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


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
    try:
        return fh.read(n)
    except OSError as exc:
        raise SourceUnreadable(f"{path}: {exc.strerror or exc}") from None


def part_size_for(size: int, preferred: int, max_parts: int, min_part: int) -> int:
    """``preferred`` unless that needs more than ``max_parts`` parts (rounded up to a MiB)."""
    need = math.ceil(size / max_parts) if size else 0
    return max(preferred, min_part, math.ceil(need / MiB) * MiB)


@dataclass(frozen=True)
class Steps:
    """What a store does for an upload in parts. ``stored`` returns {number: (size, tag)} for
    an upload the store knows, and raises NotFound for one it forgot."""

    start: Callable[[int], str]  # part size → upload id
    stored: Callable[[str], Mapping[int, tuple[int, str]]]
    abandon: Callable[[str], None]  # upload id → discard it on the store
    send: Callable[[str, int, bytes], PartRecord]  # upload id, number, bytes → stored part
    complete: Callable[[str, list[PartRecord]], str]  # → the object's etag


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
    ) -> dict[int, PartRecord]:
        def one(number: int, data: bytes) -> PartRecord:
            record = steps.send(upload_id, number, data)
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
        upload_id = steps.start(part_bytes)
        if journal is not None:
            journal.started(upload_id, part_bytes)
        kept: dict[int, PartRecord] = {}
    else:
        upload_id, part_bytes, kept = resumed
        if journal is not None and kept:
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
) -> tuple[str, int, dict[int, PartRecord]] | None:
    state = journal.previous()
    if state is None:
        return None
    if not state.same_source:
        log.info("%s changed since its upload began; starting %s afresh", path, key)
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
        if "md5:" + md5_b64(local) == rec.checksum:
            kept[n] = rec
        else:
            log.info("part %d of %s differs from the local bytes; sending it again", n, key)
    return state.upload_id, state.part_bytes, kept
