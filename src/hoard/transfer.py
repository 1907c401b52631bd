"""Executes a plan's uploads on a backend with a bounded pool of worker threads.

Workers only talk to the backend; the coordinating thread records the results in the catalog,
a batch per transaction, once the backend made the batch's objects durable. A file that changed
while it was uploaded is not recorded as archived: it is prepared again (re-stat, re-hash,
re-key) and retried once. An error that would repeat for every file (unreachable endpoint,
missing bucket, rejected credentials, full disk) stops the run, and so does a streak of files
that each failed a temporary way through all their retries (``hoard.streak``: a store
answering every request with a server error, such as one whose own disks are full).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from hoard import metadata as meta
from hoard.backends.base import Backend, PutResult
from hoard.catalog import Catalog, Outcome
from hoard.errors import BackendError, HoardError, Transient
from hoard.model import Action
from hoard.report import Reporter
from hoard.streak import FailureStreak

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
    #: the metadata the object was stored with
    metadata: dict[str, str] | None = None
    error: str = ""
    stops_run: bool = False
    changed: bool = False
    #: failed a temporary way (server error, throttling, dropped connection) after every retry
    transient: bool = False


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
    metadata = meta.for_file(f, action.hash)
    try:
        put = backend.put(action.key, f.path, f.size, metadata, tier, journal)
    except HoardError as exc:
        stops = isinstance(exc, BackendError) and exc.stops_run
        return _Result(
            action,
            attempt,
            started,
            clock(),
            error=str(exc),
            stops_run=stops,
            transient=isinstance(exc, Transient),
        )
    except Exception as exc:  # a bug: keep going, but say so loudly
        log.exception("internal error uploading %s", f.path)
        return _Result(action, attempt, started, clock(), error=f"internal error: {exc!r}")
    try:
        st = os.stat(f.path)
        changed = (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)
    except OSError:
        changed = True
    return _Result(action, attempt, started, clock(), put=put, metadata=metadata, changed=changed)


#: Results are recorded in the catalog a batch at a time: every BATCH_FILES results or
#: BATCH_NS after the first unrecorded one, whichever comes first, and always at the end.
BATCH_FILES = 256
BATCH_NS = 300_000_000
_WAIT_S = BATCH_NS / 1e9


class _Recorder:
    """Collects outcomes and records them in one catalog transaction per batch, after the
    backend has made the batch's objects durable (``Backend.flush``)."""

    def __init__(
        self, backend: Backend, catalog: Catalog, clock: Clock, stats: TransferStats
    ) -> None:
        self.backend, self.catalog, self.clock, self.stats = backend, catalog, clock, stats
        self.batch: list[Outcome] = []
        self._since = 0

    def add(self, o: Outcome) -> None:
        if not self.batch:
            self._since = self.clock()
        self.batch.append(o)

    def flush_if_due(self) -> None:
        if self.batch and (
            len(self.batch) >= BATCH_FILES or self.clock() - self._since >= BATCH_NS
        ):
            self.flush()

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        if any(o.outcome == "ok" for o in batch):
            try:
                self.backend.flush()
            except BackendError as exc:
                batch = [self._not_durable(o, str(exc)) for o in batch]
        self.catalog.record_many(batch)

    def _not_durable(self, o: Outcome, error: str) -> Outcome:
        """An upload the store took but could not make durable: failed, and the run stops."""
        if o.outcome != "ok":
            return o
        st = self.stats
        st.uploaded -= 1
        st.bytes -= o.bytes
        st.failed += 1
        st.errors.append(f"{o.file.path}: {error}")
        st.stopped_by = st.stopped_by or error
        return replace(o, outcome="failed", bytes=0, etag="", tier="", metadata=None, error=error)


class _Workers:
    """Threads that take (action, attempt) from ``pending`` and collect their results for the
    coordinating thread, which feeds ``pending`` (retries first) a window at a time.

    At most ``window`` files are taken and not yet handled by the coordinator (in flight, or
    done and waiting), so a stop or an error that ends the run starts at most that many more.
    The coordinator is woken once per ``notify_at`` results (sooner for a failure, or when
    nothing is left in flight), not once per file: each wake-up is a thread switch that the
    upload threads pay for in latency when files are small."""

    def __init__(
        self,
        count: int,
        upload: Callable[[Action, int], _Result],
        pending: deque[tuple[Action, int]],
        window: int,
        stop: threading.Event | None,
    ) -> None:
        self.pending = pending
        self._upload = upload
        self._window = max(1, window)
        self._notify_at = max(1, self._window // 4)
        self._stop = stop
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)  # workers: a file may be taken
        self._ready = threading.Condition(self._lock)  # coordinator: results are waiting
        self._results: list[_Result] = []
        self._taken = 0  # taken and not yet handled
        self._in_flight = 0
        self._halted = False
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"hoard-upload_{i}", daemon=True)
            for i in range(count)
        ]
        for t in self._threads:
            t.start()

    def _take(self) -> tuple[Action, int] | None:
        with self._lock:
            while not self._closing:
                if (
                    self.pending
                    and not self._halted
                    and self._taken < self._window
                    and not (self._stop is not None and self._stop.is_set())
                ):
                    self._taken += 1
                    self._in_flight += 1
                    return self.pending.popleft()
                self._more.wait()
            return None

    def _run(self) -> None:
        while (item := self._take()) is not None:
            action, attempt = item
            try:
                result = self._upload(action, attempt)
            except BaseException as exc:  # a bug: _upload turns errors into results
                result = _Result(action, attempt, 0, 0, error=f"internal error: {exc!r}")
            with self._lock:
                self._in_flight -= 1
                self._results.append(result)
                if result.stops_run:
                    self._halted = True  # no new file starts; the coordinator says why
                if (
                    len(self._results) >= self._notify_at
                    or result.put is None
                    or not self._in_flight
                ):
                    self._ready.notify()

    def collect(self, timeout_s: float) -> list[_Result] | None:
        """The results waiting, after at most ``timeout_s`` ([] if none came); None once no
        file is in flight and none will be taken."""
        with self._lock:
            if not self._results:
                if not self._in_flight and (self._halted or not self.pending):
                    return None
                self._ready.wait(timeout_s)
            results, self._results = self._results, []
            return results

    def handled(self, count: int) -> None:
        """``count`` collected results are handled: as many more files may be taken."""
        with self._lock:
            self._taken -= count
            self._more.notify_all()

    def give(self, item: tuple[Action, int]) -> None:
        """Take ``item`` next (a retry)."""
        with self._lock:
            self.pending.appendleft(item)
            self._more.notify()

    def feed(self, actions: list[Action]) -> None:
        """Take these first attempts after the files already waiting."""
        with self._lock:
            self.pending.extend((a, 1) for a in actions)
            self._more.notify_all()

    def queued(self) -> int:
        """Files waiting to be taken."""
        with self._lock:
            return len(self.pending)

    def halt(self) -> bool:
        """No new file starts; whether some were left untaken."""
        with self._lock:
            self._halted = True
            return bool(self.pending)

    def close(self) -> None:
        """Let the uploads in flight finish, then end the threads."""
        with self._lock:
            self._closing = True
            self._more.notify_all()
        for t in self._threads:
            t.join()


class _Feed:
    """The uploads not yet queued, pulled from the plan only as the pool needs them (one
    looked ahead, to know whether any are left)."""

    def __init__(self, uploads: Iterable[Action]) -> None:
        self._it = iter(uploads)
        self._next = next(self._it, None)

    def __bool__(self) -> bool:
        return self._next is not None

    def take(self, count: int) -> list[Action]:
        out: list[Action] = []
        while self._next is not None and len(out) < count:
            out.append(self._next)
            self._next = next(self._it, None)
        return out

    def count_rest(self) -> int:
        """Drain the feed: how many were left."""
        if self._next is None:
            return 0
        self._next = None
        return 1 + sum(1 for _ in self._it)


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
    """Upload each action; once ``stop`` is set no new file starts, files in flight finish.

    ``uploads`` is read lazily, never more than a window ahead of the uploads in flight (a
    plan streams its actions from disk). A result is recorded only after the store
    confirmed the object (and made it durable, see ``Backend.flush``), a batch at a time: a
    crash loses at most the last batch's records, whose files the next run finds on the
    remote (adopted) or uploads again."""
    stats = TransferStats()
    window = 2 * max(1, workers)
    feed = _Feed(uploads)
    pending: deque[tuple[Action, int]] = deque((a, 1) for a in feed.take(window))
    if not pending:
        return stats
    recorder = _Recorder(backend, catalog, clock, stats)
    pool = _Workers(
        min(max(1, workers), len(pending)),  # fewer than a window: that many uploads in all
        lambda a, n: _upload(backend, catalog, reporter, a, n, tier, clock),
        pending,
        window,
        stop,
    )
    streak = FailureStreak()
    try:
        while (results := pool.collect(_WAIT_S)) is not None:
            for r in results:
                retry = _handle(r, backend, recorder, job_id, reporter, stats, prepare)
                if retry is not None:
                    pool.give((retry, 2))
                why = streak.add(r.put is not None, r.transient, r.error)
                if why and not stats.stopped_by:
                    stats.stopped_by = why
            recorder.flush_if_due()
            if stop is not None and stop.is_set() and not stats.stopped_by:
                if pool.halt() or feed:
                    stats.interrupted = True
                    stats.stopped_by = "asked to stop"
            elif stats.stopped_by:
                pool.halt()
            elif feed:
                pool.feed(feed.take(window - pool.queued()))
            pool.handled(len(results))
        stats.not_attempted = pool.queued() + feed.count_rest()
        stats.failed += stats.not_attempted
    finally:
        try:
            pool.close()
        finally:
            recorder.flush()
    return stats


def _handle(
    r: _Result,
    backend: Backend,
    recorder: _Recorder,
    job_id: int,
    reporter: Reporter,
    stats: TransferStats,
    prepare: Prepare,
) -> Action | None:
    a = r.action
    if r.put is not None and not r.changed:
        recorder.add(
            Outcome(
                job_id,
                a.file,
                backend.url,
                a.key,
                "upload",
                a.reason,
                "ok",
                r.started_ns,
                r.ended_ns,
                a.hash,
                a.file.size,
                r.put.etag,
                r.put.tier,
                r.metadata,
            )
        )
        stats.uploaded += 1
        stats.bytes += a.file.size - r.put.resumed_bytes
        if r.put.resumed_bytes:
            stats.resumed += 1
            stats.resumed_bytes += r.put.resumed_bytes
        reporter.transferred(a, True, a.file.size - r.put.resumed_bytes, "")
        return None
    base = Outcome(
        job_id, a.file, backend.url, a.key, "upload", a.reason, "", r.started_ns, r.ended_ns, a.hash
    )
    if r.changed and r.attempt == 1:
        retry = prepare(a)
        if retry is not None:
            recorder.add(
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
    recorder.add(replace(base, outcome="failed", error=error))
    stats.failed += 1
    stats.errors.append(f"{a.file.path}: {error}")
    reporter.transferred(a, False, 0, error)
    if r.stops_run and not stats.stopped_by:
        stats.stopped_by = error
    return None
