"""Content hashes, written as `ALGO:HEX` so the algorithm is named wherever a hash is stored."""

from __future__ import annotations

import os
from typing import Any, Protocol

from blake3 import blake3

ALGORITHMS = ("blake3", "sha256")
CHUNK_BYTES = 1 << 20
_THREADED_FROM_BYTES = 32 << 20


class _Hasher(Protocol):
    def update(self, data: Any, /) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str, size_hint: int = 0) -> _Hasher:
    if algorithm == "blake3":
        if size_hint >= _THREADED_FROM_BYTES:
            return blake3(max_threads=blake3.AUTO)
        return blake3()
    if algorithm == "sha256":
        import hashlib  # OpenSSL's load is ~3 ms of start-up; blake3 is the default

        return hashlib.sha256()
    raise ValueError(f"unknown hash algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def hash_file(path: str, algorithm: str = "blake3", size_hint: int = 0) -> str:
    """Hash a file's bytes; OSError (unreadable, vanished) propagates to the caller."""
    h = new_hasher(algorithm, size_hint)
    with open(path, "rb", buffering=0) as fh:
        if 0 < size_hint < CHUNK_BYTES:
            # A small file (as measured): read as it is, not into a chunk-sized buffer
            # (zeroing 1 MiB took twice as long as hashing a 4 KiB file); read on to the end.
            while data := fh.read(size_hint + 1):
                h.update(data)
            return f"{algorithm}:{h.hexdigest()}"
        buf = bytearray(CHUNK_BYTES)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return f"{algorithm}:{h.hexdigest()}"


def hash_fd(fd: int, algorithm: str = "blake3", size_hint: int = 0) -> str:
    """Hash an open file from its start, without moving its offset."""
    h = new_hasher(algorithm, size_hint)
    offset = 0
    while chunk := os.pread(fd, CHUNK_BYTES * 8, offset):
        h.update(chunk)
        offset += len(chunk)
    return f"{algorithm}:{h.hexdigest()}"


def hash_bytes(data: bytes, algorithm: str = "blake3") -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def split_hash(value: str) -> tuple[str, str]:
    algo, _, hexdigest = value.partition(":")
    return algo, hexdigest
