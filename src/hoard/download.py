"""Executing a restore's downloads: files in parallel, each fetched and verified under a
temporary name, then made durable, placed and recorded in batches.

A worker fetches an object into a temporary file (``fetch``: ranges in parallel, hashed as they
arrive), compares the hash and gives the file its mtime (``safepath.stage``). The coordinator
collects staged files and commits them in batches of up to BATCH_FILES (or once the oldest has
waited BATCH_NS): one ``syncfs`` makes the batch's bytes durable (elsewhere each file was
fsynced when staged), then each file is renamed into place, the new names are made durable (a
second ``syncfs``, or an fsync of each folder that got one: ``Folders.commit``), and only then
does the catalog record the batch. So, after a crash or power loss: a file under its final
name is always complete and verified; a file the catalog records as restored has a durable
name; a file renamed but not yet recorded may or may not be there, and the next run verifies it
by hash and adopts it, or downloads it again; a file staged but not yet renamed is left under
its temporary name, which the next run overwrites.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from hoard.backends.base import Backend
from hoard.catalog import Catalog, RestoreRow
from hoard.errors import HoardError, NotWarm, Transient
from hoard.fetch import Corrupted, fetch
from hoard.hashing import split_hash
from hoard.safepath import Folders, Staged, stage
from hoard.streak import FailureStreak

if TYPE_CHECKING:
    from hoard.restore import RestoreResult, Step

log = logging.getLogger("hoard.restore")
BATCH_FILES = 256
BATCH_NS = 500_000_000


def download_one(backend: Backend, step: Step, folders: Folders, ranges: tuple[int, int]) -> Staged:
    """Fetch and verify one object under its temporary name. ``ranges`` is (range size,
    ranges fetched at a time) for objects larger than one range."""
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

    return stage(folders, step.root, step.rel, write, item.mtime_ns)


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
    placed: list[tuple[Step, Staged]] = []
    started = oldest = clock()

    def fail(step: Step, error: str) -> None:
        item = step.item
        assert item is not None
        result.failed += 1
        result.errors.append(f"{step.target}: {error}")
        catalog.record_failure(
            job, step.target, item.store, item.key, "download", step.reason, error, started, clock()
        )

    def record_placed() -> None:
        if not placed:
            folders.sync()
            return
        rows: list[RestoreRow] = []
        batch = placed[:]
        placed.clear()  # a commit that raises (a folder's fsync failed) is not tried again
        errors = folders.commit([staged for _, staged in batch])
        for (step, staged), error in zip(batch, errors, strict=True):
            item = step.item
            assert item is not None
            if error is not None:
                fail(step, _describe(error, step.target))
                continue
            mtime_ns = item.mtime_ns
            if mtime_ns is None:
                mtime_ns = os.stat(step.target).st_mtime_ns
            rows.append(
                (
                    step.target,
                    item.store,
                    item.key,
                    item.size,
                    mtime_ns,
                    staged.inode,
                    item.hash,
                    step.reason,
                    started,
                    clock(),
                )
            )
            result.bytes += item.size
        if rows:
            catalog.record_restores(job, rows)
        result.restored += len(rows)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hoard-restore")
    futures: list[tuple[Step, Future[Staged]]] = []
    collected = 0
    try:
        futures = [
            (st, pool.submit(download_one, backends(st.item.store), st, folders, ranges))
            for st in steps
            if st.item is not None
        ]
        streak = FailureStreak()
        for i, (step, fut) in enumerate(futures):
            collected = i  # the ones before it are placed or failed
            item = step.item
            assert item is not None
            if result.stopped_by and fut.cancelled():
                result.not_attempted += 1
                result.failed += 1
                continue
            if placed and len(placed) < BATCH_FILES and not fut.done():
                wait([fut], timeout=max(0.0, (oldest + BATCH_NS - clock()) / 1e9))
            if placed and (len(placed) >= BATCH_FILES or not fut.done()):
                record_placed()  # a staged file waits about BATCH_NS at most to be placed
            try:
                staged = fut.result()
            except Exception as exc:
                error = _describe(exc, step.target)
                if isinstance(exc, NotWarm):
                    error = f"{item.key} is not thawed yet: {exc}"
                fail(step, error)
                why = streak.add(False, isinstance(exc, Transient), error)
                if why and not result.stopped_by:  # the files not started are not tried
                    result.stopped_by = why
                    pool.shutdown(wait=False, cancel_futures=True)
                continue
            streak.add(True, False, "")
            if not placed:
                oldest = clock()
            placed.append((step, staged))
        collected = len(futures)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        taken = {id(step) for step, _ in placed}
        for step, fut in futures[collected:]:  # staged by the time of an interruption: placed
            done = fut.done() and not fut.cancelled() and fut.exception() is None
            if done and id(step) not in taken:
                placed.append((step, fut.result()))
        try:
            record_placed()  # what was staged before an interruption is placed and recorded
        finally:
            folders.close()


def _describe(exc: Exception, target: str) -> str:
    if isinstance(exc, HoardError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    log.exception("internal error restoring %s", target)  # a bug: fail this file, keep going
    return f"internal error: {exc!r}"
