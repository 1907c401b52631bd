"""Fetching one object into an open file: in ranges, in parallel, hashed while it arrives.

Ranges are written where they belong with ``pwrite``. The hash is fed in file order as the
bytes arrive: the range at the hash frontier is hashed from memory chunk by chunk; a range that
arrives ahead of the frontier is hashed (from the page cache) as soon as every byte before it is
in, by whichever thread moved the frontier. When the last range is in, the hash is done: the
file is never read back as a whole. Each 8 MiB of a many-range object is handed to the kernel
for writeback once hashed, so the fsync that makes the file durable before its rename has
little left to write.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from hoard.backends.base import Backend
from hoard.errors import HoardError
from hoard.hashing import new_hasher

CHUNK_BYTES = 1 << 20
_REREAD_BYTES = 8 << 20
WRITEBACK_BYTES = 8 << 20


class Corrupted(HoardError):
    """A downloaded object does not match the hash recorded when it was archived. It was not
    placed; the copy on the remote may be damaged."""


class InOrderHash:
    """A hash over a file written in any order: call ``wrote(offset, data)`` after each write."""

    def __init__(
        self, algorithm: str, fd: int, size_hint: int = 0, writeback: bool = False
    ) -> None:
        self.algorithm = algorithm
        self._writeback = writeback
        self._handed = 0  # bytes before it were handed to writeback
        self._hasher = new_hasher(algorithm, size_hint)
        self._fd = fd
        self._lock = threading.Lock()
        self._ahead: dict[int, int] = {}  # start -> end of written extents beyond the frontier
        self._busy = False
        self.frontier = 0  # every byte before it has been hashed

    def wrote(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        with self._lock:
            if self._busy or offset != self.frontier:
                self._ahead[offset] = end  # hashed by the thread that reaches it
                return
            self._busy = True
        try:
            self._hasher.update(data)
            start = end
            while True:
                if self._writeback and start - self._handed >= WRITEBACK_BYTES:
                    start_writeback(self._fd, self._handed, start - self._handed)
                    self._handed = start
                with self._lock:
                    self.frontier = start
                    stop = self._ahead.pop(start, None)
                    if stop is None:
                        self._busy = False
                        return
                while start < stop:
                    chunk = os.pread(self._fd, min(_REREAD_BYTES, stop - start), start)
                    if not chunk:
                        raise Corrupted(f"the file ends at {start}, before {stop}")
                    self._hasher.update(chunk)
                    start += len(chunk)
        except BaseException:
            with self._lock:
                self._busy = False
            raise

    def hexdigest(self) -> str:
        return f"{self.algorithm}:{self._hasher.hexdigest()}"


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these dirty pages to disk now, without waiting for them
    (Linux's sync_file_range(SYNC_FILE_RANGE_WRITE); elsewhere nothing). Only a head start for
    the fsync that follows: a failure here is left for that fsync to report."""
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], call)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    done = os.pwrite(fd, data, offset)
    while done < len(data):
        done += os.pwrite(fd, memoryview(data)[done:], offset + done)


def fetch_range(
    backend: Backend, key: str, fd: int, offset: int, length: int, hasher: InOrderHash | None
) -> int:
    """Write bytes [offset, offset + length) of the object at the same place in ``fd``."""
    stream = backend.open(key, offset, length)
    got = 0
    try:
        readinto = getattr(stream, "readinto", None)
        if readinto is None:  # a stream that can only hand out new bytes objects
            while chunk := stream.read(CHUNK_BYTES):
                pwrite_all(fd, chunk, offset + got)
                if hasher is not None:
                    hasher.wrote(offset + got, chunk)
                got += len(chunk)
        else:  # one buffer for the whole range: no allocation per chunk
            buffer = memoryview(bytearray(min(CHUNK_BYTES, max(1, length))))
            while n := readinto(buffer):
                part = buffer[:n]
                pwrite_all(fd, part, offset + got)
                if hasher is not None:
                    hasher.wrote(offset + got, part)
                got += n
    finally:
        stream.close()
    if got != length:
        raise Corrupted(f"{key}: bytes {offset}-{offset + length - 1}: received {got}")
    return got


def fetch(
    backend: Backend,
    key: str,
    fd: int,
    size: int,
    algorithm: str | None,
    range_bytes: int,
    range_workers: int,
) -> str | None:
    """Fetch the whole object into ``fd``; returns its hash under ``algorithm`` (None: none)."""
    ranges = [(off, min(range_bytes, size - off)) for off in range(0, size, range_bytes)]
    hasher = InOrderHash(algorithm, fd, size, len(ranges) > 1) if algorithm else None
    if len(ranges) > 1:

        def one(r: tuple[int, int]) -> None:
            fetch_range(backend, key, fd, *r, hasher)
            if hasher is None:
                start_writeback(fd, *r)

        with ThreadPoolExecutor(range_workers, thread_name_prefix="hoard-range") as pool:
            list(pool.map(one, ranges))
    elif ranges:
        fetch_range(backend, key, fd, *ranges[0], hasher)
    if hasher is None:
        return None
    if hasher.frontier != size:
        raise Corrupted(f"{key}: only {hasher.frontier} of {size} bytes were hashed")
    return hasher.hexdigest()
