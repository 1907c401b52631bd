"""Executes a plan's uploads on a backend with a bounded pool of worker threads.

Workers only talk to the backend; the coordinating thread records every result in the catalog
as it arrives. A file that changed while it was uploaded is not recorded as archived: it is
prepared again (re-stat, re-hash, re-key) and retried once. An error that would repeat for every
file (unreachable endpoint, missing bucket, rejected credentials, full disk) stops the run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace

from hoard import metadata as meta
from hoard.backends.base import Backend, PutResult
from hoard.catalog import Catalog, Outcome
from hoard.errors import BackendError, HoardError
from hoard.model import Action
from hoard.report import Reporter

log = logging.getLogger("hoard.transfer")
Clock = Callable[[], int]
#: Re-stat, re-hash and re-render a file that changed during its upload; None if it is gone.
Prepare = Callable[[Action], Action | None]


@dataclass
class TransferStats:
    uploaded: int = 0
    failed: int = 0
    bytes: int = 0
    resumed: int = 0
    resumed_bytes: int = 0
    not_attempted: int = 0
    stopped_by: str = ""
    #: Asked to stop (SIGTERM): files in flight were finished, the rest not started.
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Result:
    action: Action
    attempt: int
    started_ns: int
    ended_ns: int
    put: PutResult | None = None
    error: str = ""
    stops_run: bool = False
    changed: bool = False


def _upload(
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    action: Action,
    attempt: int,
    tier: str | None,
    clock: Clock,
) -> _Result:
    started = clock()
    f = action.file
    journal = catalog.journal(
        backend.url,
        action.key,
        f,
        on_part=lambda n: reporter.progress(action, n),
        on_resume=lambda n: reporter.resumed(action, n),
    )
    try:
        put = backend.put(action.key, f.path, f.size, meta.for_file(f, action.hash), tier, journal)
    except HoardError as exc:
        stops = isinstance(exc, BackendError) and exc.stops_run
        return _Result(action, attempt, started, clock(), error=str(exc), stops_run=stops)
    except Exception as exc:  # a bug: keep going, but say so loudly
        log.exception("internal error uploading %s", f.path)
        return _Result(action, attempt, started, clock(), error=f"internal error: {exc!r}")
    try:
        st = os.stat(f.path)
        changed = (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)
    except OSError:
        changed = True
    return _Result(action, attempt, started, clock(), put=put, changed=changed)


def execute(
    uploads: Iterable[Action],
    backend: Backend,
    catalog: Catalog,
    job_id: int,
    tier: str | None,
    workers: int,
    reporter: Reporter,
    clock: Clock,
    prepare: Prepare,
    stop: threading.Event | None = None,
) -> TransferStats:
    """Upload each action; once ``stop`` is set no new file starts, files in flight finish."""
    stats = TransferStats()
    pending: deque[tuple[Action, int]] = deque((a, 1) for a in uploads)
    inflight: dict[Future[_Result], Action] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hoard-upload")
    try:
        while pending or inflight:
            if stop is not None and stop.is_set() and not stats.stopped_by:
                for fut in [f for f in inflight if f.cancel()]:  # queued, not started
                    pending.append((inflight.pop(fut), 1))
                if pending:
                    stats.interrupted = True
                    stats.stopped_by = "asked to stop"
            while pending and not stats.stopped_by and len(inflight) < 2 * workers:
                action, attempt = pending.popleft()
                inflight[
                    pool.submit(_upload, backend, catalog, reporter, action, attempt, tier, clock)
                ] = action
            if not inflight:
                break
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for fut in done:
                del inflight[fut]
                retry = _handle(
                    fut.result(), backend, catalog, job_id, tier, reporter, stats, prepare
                )
                if retry is not None:
                    pending.appendleft((retry, 2))
        stats.not_attempted = len(pending)
        stats.failed += len(pending)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return stats


def _handle(
    r: _Result,
    backend: Backend,
    catalog: Catalog,
    job_id: int,
    tier: str | None,
    reporter: Reporter,
    stats: TransferStats,
    prepare: Prepare,
) -> Action | None:
    a = r.action
    base = Outcome(
        job_id=job_id,
        file=a.file,
        remote=backend.url,
        key=a.key,
        action="upload",
        reason=a.reason,
        outcome="",
        started_ns=r.started_ns,
        ended_ns=r.ended_ns,
        hash=a.hash,
    )
    if r.put is not None and not r.changed:
        catalog.record(
            replace(
                base,
                outcome="ok",
                bytes=a.file.size,
                etag=r.put.etag,
                tier=r.put.tier,
                metadata=meta.for_file(a.file, a.hash),
            )
        )
        stats.uploaded += 1
        stats.bytes += a.file.size - r.put.resumed_bytes
        if r.put.resumed_bytes:
            stats.resumed += 1
            stats.resumed_bytes += r.put.resumed_bytes
        reporter.transferred(a, True, a.file.size - r.put.resumed_bytes, "")
        return None
    if r.changed and r.attempt == 1:
        retry = prepare(a)
        if retry is not None:
            catalog.record(
                replace(
                    base,
                    outcome="retried",
                    error="file changed while it was uploaded; retrying once",
                )
            )
            return retry
        error = "file vanished while it was uploaded"
    elif r.changed:
        error = "file kept changing while it was uploaded; not recorded as archived"
    else:
        error = r.error
    catalog.record(replace(base, outcome="failed", error=error))
    stats.failed += 1
    stats.errors.append(f"{a.file.path}: {error}")
    reporter.transferred(a, False, 0, error)
    if r.stops_run and not stats.stopped_by:
        stats.stopped_by = error
    return None
