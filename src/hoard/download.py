"""Executing a restore's downloads: files in parallel, each fetched and verified under a
temporary name, then made durable, placed and recorded in batches.

A small object (one range at most) is read whole without a thread of ours waiting for it, where
the store can (``Backend.start_get``: S3 through the CRT): the coordinator starts the request and,
when its bytes arrive, checks their hash and writes them under the temporary name itself
(``place_bytes``). Any other object, or one whose quick read failed, is fetched by a worker into
a temporary file (``fetch``: ranges in parallel, hashed as they arrive, with the store's
retries). Either way the file gets its mtime (``safepath.stage``). The coordinator
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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from hoard.backends.base import Backend
from hoard.catalog import Catalog, RestoreRow
from hoard.errors import HoardError, NotWarm, Transient
from hoard.fetch import Corrupted, fetch, pwrite_all
from hoard.hashing import hash_bytes, split_hash
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
        _check(item.key, fetch(backend, item.key, fd, item.size, algorithm, *ranges), item.hash)

    return stage(folders, step.root, step.rel, write, item.mtime_ns)


def place_bytes(step: Step, folders: Folders, data: bytes) -> Staged:
    """Verify an object read whole into memory (``Backend.start_get``; the caller checked its
    length) and write it under its temporary name, as ``download_one`` does."""
    item = step.item
    assert item is not None
    if item.hash:
        _check(item.key, hash_bytes(data, split_hash(item.hash)[0]), item.hash)
    return stage(folders, step.root, step.rel, lambda fd: pwrite_all(fd, data, 0), item.mtime_ns)


def _check(key: str, got: str | None, want: str | None) -> None:
    if want and got != want:
        raise Corrupted(
            f"{key}: content hash {(got or '')[:23]}… does not match the recorded "
            f"{want[:23]}…; not placed"
        )


#: one file's end: (step, its staged file or why not, whether it was read without waiting,
#: the bytes so read)
_Ended = tuple["Step", Staged | None, BaseException | None, bool, bytes | None]


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
    """Download ``steps``, at most ``workers`` files at a time. A small object the store can
    read without a thread waiting for it (``Backend.start_get``) is started from here and
    written by this thread when its bytes arrive; a larger one, or one whose quick read
    failed, is fetched by a worker thread (``download_one``, with the store's retries). Each
    file's end comes back here, in whatever order, to be placed in batches."""
    todo = deque(st for st in steps if st.item is not None)
    if not todo:
        return
    folders = Folders()
    workers = max(1, workers)
    placed: list[tuple[Step, Staged]] = []
    ended: SimpleQueue[_Ended] = SimpleQueue()
    started = oldest = clock()
    #: what is in flight, by id(step): the worker futures whose end was not yet taken in (an
    #: interruption places what they staged), and the quick reads
    futures: dict[int, tuple[Step, Future[Staged]]] = {}
    reading: set[int] = set()
    #: per target root: whether it takes batches (one syncfs), so this thread may write small
    #: files there; where each file is fsynced alone that would hold up every file behind it
    batches: dict[str, bool] = {}
    waiting: set[int] = set()  # steps whose quick read failed: a worker fetches them

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

    def takes_batches(root: str) -> bool:
        ok = batches.get(root)
        if ok is None:
            try:
                with folders.folder(root, []) as fd:
                    ok = folders.syncs(os.fstat(fd).st_dev)
            except (OSError, HoardError):  # each file's own attempt says what is wrong
                ok = False
            batches[root] = ok
        return ok

    def start(step: Step) -> None:
        item = step.item
        assert item is not None
        backend = backends(item.store)
        if item.size <= ranges[0] and id(step) not in waiting and takes_batches(step.root):

            def read(data: bytes | None, error: Exception | None) -> None:
                ended.put((step, None, error, True, data))

            reading.add(id(step))  # before: its end may come before start_get returns
            if backend.start_get(item.key, item.size, read):
                return
            reading.discard(id(step))

        def fetched(fut: Future[Staged]) -> None:
            if fut.cancelled():  # only by the shutdown at the end: nothing waits for it
                return
            if (error := fut.exception()) is not None:
                ended.put((step, None, error, False, None))
            else:
                ended.put((step, fut.result(), None, False, None))

        futures[id(step)] = (step, pool.submit(download_one, backend, step, folders, ranges))
        futures[id(step)][1].add_done_callback(fetched)

    def room() -> bool:
        return bool(todo) and len(futures) + len(reading) < workers and not result.stopped_by

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hoard-restore")
    streak = FailureStreak()
    try:
        while True:
            while room():
                start(todo.popleft())
            if not futures and not reading:
                break
            try:  # a staged file waits about BATCH_NS at most to be placed
                wait_s = max(0.0, (oldest + BATCH_NS - clock()) / 1e9) if placed else None
                step, staged, exc, was_quick, data = ended.get(timeout=wait_s)
            except Empty:
                record_placed()
                continue
            item = step.item
            assert item is not None
            if not was_quick:
                futures.pop(id(step), None)
            else:
                reading.discard(id(step))
                if exc is None and (data is None or len(data) != item.size):
                    exc = Corrupted(f"{item.key}: received {len(data or b'')} of {item.size} bytes")
                if exc is not None:  # fetched again at once by a worker: it retries, says why
                    waiting.add(id(step))
                    start(step)
                    continue
                if room():
                    start(todo.popleft())  # the next request goes out before this file is written
                try:
                    staged = place_bytes(step, folders, data or b"")
                except Exception as failed:  # a damaged object, a symlink in the way, …
                    exc = failed
            if staged is not None and staged.durable:
                batches[step.root] = False  # fsynced alone: this file system takes no batches
            if exc is not None:
                if not isinstance(exc, Exception):
                    raise exc
                error = _describe(exc, step.target)
                if isinstance(exc, NotWarm):
                    error = f"{item.key} is not thawed yet: {exc}"
                fail(step, error)
                why = streak.add(False, isinstance(exc, Transient), error)
                if why and not result.stopped_by:  # the files not started are not tried
                    result.stopped_by = why
                continue
            assert staged is not None
            streak.add(True, False, "")
            if not placed:
                oldest = clock()
            placed.append((step, staged))
            if len(placed) >= BATCH_FILES or clock() - oldest >= BATCH_NS:
                record_placed()
        result.not_attempted += len(todo)  # after a stop: the files not started
        result.failed += len(todo)
    finally:
        # After an interruption: what a worker staged is placed and recorded; the bytes of
        # quick reads still to come are not written (their requests end on their own)
        todo.clear()
        pool.shutdown(wait=True, cancel_futures=True)
        for step, fut in futures.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                placed.append((step, fut.result()))
        try:
            record_placed()
        finally:
            folders.close()


def _describe(exc: Exception, target: str) -> str:
    if isinstance(exc, HoardError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    log.exception("internal error restoring %s", target)  # a bug: fail this file, keep going
    return f"internal error: {exc!r}"
