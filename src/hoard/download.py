"""Executing a restore's downloads: files in parallel, each fetched, verified and placed, then
made durable and recorded in batches.

A worker fetches an object into a temporary file (``fetch``: ranges in parallel, hashed as they
arrive), compares the hash, gives the file its mtime, fsyncs it and renames it into place
(``safepath.place``). The coordinator collects placed files and records them in the catalog in
batches of up to BATCH_FILES (or once the oldest has waited BATCH_NS), each batch after one fsync
of every folder its files were renamed into (``Folders.sync``). So, after a crash or power loss:
a file under its final name is always complete and verified; a file the catalog records as
restored has a durable name; a file renamed but not yet recorded may or may not be there, and
the next run verifies it by hash and adopts it, or downloads it again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from hoard.backends.base import Backend
from hoard.catalog import Catalog, RestoreRow
from hoard.errors import HoardError, NotWarm
from hoard.fetch import Corrupted, fetch
from hoard.hashing import split_hash
from hoard.safepath import Folders, place

if TYPE_CHECKING:
    from hoard.restore import RestoreResult, Step

log = logging.getLogger("hoard.restore")
BATCH_FILES = 256
BATCH_NS = 500_000_000


def download_one(
    backend: Backend, step: Step, folders: Folders, ranges: tuple[int, int]
) -> tuple[int, int]:
    """Fetch, verify and place one object; returns (inode, bytes). ``ranges`` is (range
    size, ranges fetched at a time) for objects larger than one range."""
    item = step.item
    assert item is not None

    def write(fd: int) -> None:
        algorithm = split_hash(item.hash)[0] if item.hash else None
        got = fetch(backend, item.key, fd, item.size, algorithm, *ranges)
        if item.hash and got != item.hash:
            raise Corrupted(
                f"{item.key}: content hash {(got or '')[:23]}… does not match the recorded "
                f"{item.hash[:23]}…; not placed"
            )

    return place(folders, step.root, step.rel, write, item.mtime_ns), item.size


def download_all(
    steps: list[Step],
    workers: int,
    catalog: Catalog,
    backends: Callable[[str], Backend],
    clock: Callable[[], int],
    result: RestoreResult,
    job: int,
    ranges: tuple[int, int],
) -> None:
    if not steps:
        return
    folders = Folders()
    placed: list[tuple[Step, int, int]] = []
    started = oldest = clock()

    def record_placed() -> None:
        folders.sync()
        rows: list[RestoreRow] = []
        for step, inode, size in placed:
            item = step.item
            assert item is not None
            mtime_ns = item.mtime_ns
            if mtime_ns is None:
                mtime_ns = os.stat(step.target).st_mtime_ns
            rows.append(
                (
                    step.target,
                    item.store,
                    item.key,
                    size,
                    mtime_ns,
                    inode,
                    item.hash,
                    step.reason,
                    started,
                    clock(),
                )
            )
        if rows:
            catalog.record_restores(job, rows)
        result.restored += len(rows)
        result.bytes += sum(size for _, _, size in placed)
        placed.clear()

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hoard-restore")
    try:
        futures: list[tuple[Step, Future[tuple[int, int]]]] = [
            (st, pool.submit(download_one, backends(st.item.store), st, folders, ranges))
            for st in steps
            if st.item is not None
        ]
        for step, fut in futures:
            item = step.item
            assert item is not None
            if placed and len(placed) < BATCH_FILES and not fut.done():
                wait([fut], timeout=max(0.0, (oldest + BATCH_NS - clock()) / 1e9))
            if placed and (len(placed) >= BATCH_FILES or not fut.done()):
                record_placed()  # a placed file waits about BATCH_NS at most to be recorded
            try:
                inode, size = fut.result()
            except Exception as exc:
                error = _describe(exc, step.target)
                if isinstance(exc, NotWarm):
                    error = f"{item.key} is not thawed yet: {exc}"
                result.failed += 1
                result.errors.append(f"{step.target}: {error}")
                catalog.record_failure(
                    job,
                    step.target,
                    item.store,
                    item.key,
                    "download",
                    step.reason,
                    error,
                    started,
                    clock(),
                )
                continue
            if not placed:
                oldest = clock()
            placed.append((step, inode, size))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        try:
            record_placed()  # what was placed before an interruption is recorded too
        finally:
            folders.close()


def _describe(exc: Exception, target: str) -> str:
    if isinstance(exc, HoardError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    log.exception("internal error restoring %s", target)  # a bug: fail this file, keep going
    return f"internal error: {exc!r}"
