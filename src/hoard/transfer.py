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

import functools
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from hoard import metadata as meta
from hoard.backends.base import Backend, PutResult
from hoard.catalog import Catalog, Outcome
from hoard.errors import BackendError, HoardError, Interrupted, Transient
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
    #: Stopped before planning ended (it uploads as it plans): files it had not reached
    #: are not counted in ``not_attempted``.
    unexamined: bool = False
    #: Reading the uploads failed (planning found a conflict, the remote could not be
    #: listed): the caller raises it, once it has recorded what was uploaded.
    feed_error: BaseException | None = None

    def left_out(self) -> str:
        """What a run that stopped early left out, for its message."""
        if self.unexamined:
            return (
                f"{self.not_attempted} files were not attempted, and the files planning had "
                "not reached yet were not counted"
            )
        return f"{self.not_attempted} files were not attempted"


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
    #: ended on the store client's thread, which does no file system call: whether the file
    #: changed is for the coordinator to find out
    stat_later: bool = False


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
    return _Result(
        action, attempt, started, clock(), put=put, metadata=metadata, changed=_changed(action)
    )


def _changed(action: Action) -> bool:
    """Whether the file changed (or went) since it was prepared: then it is not recorded."""
    f = action.file
    try:
        st = os.stat(f.path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)


#: Start an upload without waiting for it (``Backend.start_put``): True once started, and
#: then the callback gets its result, and whether it failed in a way ``put`` should try again
#: (it retries, and says what went wrong); False where it cannot start. The last argument:
#: whether it may wait (False on the store client's own threads, see ``Backend.start_put``).
Start = Callable[[Action, int, Callable[["_Result", bool], None], bool], bool]


def _start(
    backend: Backend,
    action: Action,
    attempt: int,
    tier: str | None,
    clock: Clock,
    done: Callable[[_Result, bool], None],
    wait: bool,
) -> bool:
    started = clock()
    f = action.file
    metadata = meta.for_file(f, action.hash)

    def finished(put: PutResult | None, error: Exception | None) -> None:
        # on one of the store client's threads: must not raise, or the file is never handled
        if put is None:
            log.debug("uploading %s: %s; trying again, waiting for it", f.path, error)
            failed = _Result(
                action, attempt, started, clock(), error=str(error),
                transient=isinstance(error, Transient),
            )  # fmt: skip
            done(failed, True)
            return
        done(
            _Result(action, attempt, started, clock(), put=put, metadata=metadata, stat_later=True),
            False,
        )

    return backend.start_put(action.key, f.path, f.size, metadata, tier, finished, wait)


#: set on a thread while it starts a file from inside another one's end (``_Workers._done``)
_chaining = threading.local()
#: files up to this size are started from inside another one's end, on the store client's
#: thread: reading and checksumming a larger one there would hold up that thread's other
#: connections
START_HERE_BYTES = 256 << 10

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
    coordinating thread. A feeding thread (``put``) keeps ``pending`` filled with first
    attempts, at most ``window`` waiting; the coordinator puts retries first (``give``).

    A file the store can take without a thread waiting (``start``: S3's small files) is only
    started by the thread that took it, which goes on to the next: one thread keeps ``count``
    requests in flight, and their ends come back on the store client's threads (``_done``).
    At most ``count`` files are in flight either way. Another thread starts only while every
    thread is waiting for an upload of its own (a large file, or one whose quick attempt
    failed), so that a run of small files has one thread taking files, not ``count``.

    At most ``window`` files are taken and not yet handled by the coordinator (in flight, or
    done and waiting), so a stop or an error that ends the run starts at most that many more.
    The coordinator is woken once per ``notify_at`` results (sooner for a failure, or when
    nothing is left in flight), and the feeder once ``pending`` is down to half a window, not
    once per file: each wake-up is a thread switch that the upload threads pay for in latency
    when files are small. Threads start as files arrive, up to ``count``."""

    def __init__(
        self,
        count: int,
        upload: Callable[[Action, int], _Result],
        window: int,
        stop: threading.Event | None,
        start: Start | None = None,
    ) -> None:
        #: (action, attempt, whether it may be started without waiting)
        self.pending: deque[tuple[Action, int, bool]] = deque()
        self._count = max(1, count)
        self._upload = upload
        self._start = start
        self._window = max(1, window)
        self._notify_at = max(1, self._window // 4)
        self._low = self._window // 2
        self._stop = stop
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)  # workers: a file may be taken
        self._ready = threading.Condition(self._lock)  # coordinator: results are waiting
        self._room = threading.Condition(self._lock)  # feeder: pending is low
        self._results: list[_Result] = []
        self._taken = 0  # taken and not yet handled
        self._in_flight = 0
        self._idle = 0  # threads waiting for a file
        self._blocked = 0  # threads waiting for an upload of their own
        self._halted = False
        self._closing = False
        self._feeding = True
        self._threads: list[threading.Thread] = []

    def _stopped(self) -> bool:
        return self._halted or self._closing or (self._stop is not None and self._stop.is_set())

    def _can_take(self) -> bool:
        return (
            bool(self.pending)
            and self._taken < self._window
            and self._in_flight < self._count
            and not self._stopped()
        )

    def _take_locked(self) -> tuple[Action, int, bool]:
        self._taken += 1
        self._in_flight += 1
        item = self.pending.popleft()
        if len(self.pending) <= self._low:
            self._room.notify()
        return item

    def _take(self) -> tuple[Action, int, bool] | None:
        with self._lock:
            while not self._closing:
                if self._can_take():
                    return self._take_locked()
                self._idle += 1
                self._more.wait()
                self._idle -= 1
            return None

    def _run(self) -> None:
        while (item := self._take()) is not None:
            action, attempt, quick = item
            try:
                if self._start is None:
                    result = self._upload(action, attempt)
                else:
                    done = functools.partial(self._done, action, attempt)
                    if quick and self._start(action, attempt, done, True):
                        continue
                    with self._lock:
                        self._blocked += 1
                        self._wake_worker()  # for the files after this one
                    try:
                        result = self._upload(action, attempt)
                    finally:
                        with self._lock:
                            self._blocked -= 1
            except BaseException as exc:  # a bug: _upload turns errors into results
                result = _Result(action, attempt, 0, 0, error=f"internal error: {exc!r}")
            self._finish(result, wake=False)  # this thread takes the next file itself

    def _done(self, action: Action, attempt: int, result: _Result, again: bool) -> None:
        """The end of a file started without waiting, on the store client's thread (or on the
        thread that started it, if it ended at once). ``again``: that attempt failed, and the
        file is taken again, next, to be uploaded waiting for it (unless the run is stopping:
        then the failure is its result).

        The next file waiting is started right here when it can be without waiting: no
        thread of ours has to wake up (and, on a busy machine, wait for a core) between one
        request's end and the next one's start."""
        item = None
        with self._lock:
            self._in_flight -= 1
            if again and not self._stopped():
                self._taken -= 1
                self.pending.appendleft((action, attempt, False))
            else:
                self._add_result(result)
            if (
                not getattr(_chaining, "on", False)
                and self._can_take()
                and self.pending[0][2]
                and self.pending[0][0].file.size <= START_HERE_BYTES
            ):
                item = self._take_locked()
            else:
                self._wake_worker()
        if item is not None:
            self._start_here(item)

    def _start_here(self, item: tuple[Action, int, bool]) -> None:
        """Start a taken file on this (the store client's) thread, without waiting; one that
        cannot be started so goes back to the threads."""
        action, attempt, _ = item
        assert self._start is not None
        _chaining.on = True  # a file that ends at once does not start another from in here
        try:
            started = self._start(
                action, attempt, functools.partial(self._done, action, attempt), False
            )
        except BaseException as exc:  # a bug: _start turns errors into results
            self._finish(_Result(action, attempt, 0, 0, error=f"internal error: {exc!r}"), True)
            return
        finally:
            _chaining.on = False
        if not started:
            with self._lock:
                self._in_flight -= 1
                self._taken -= 1
                self.pending.appendleft(item)
                self._wake_worker()

    def _finish(self, result: _Result, wake: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._add_result(result)
            if wake:
                self._wake_worker()

    def _add_result(self, result: _Result) -> None:
        """Under the lock: a file's result, for the coordinator."""
        self._results.append(result)
        if result.stops_run:
            self._halted = True  # no new file starts; the coordinator says why
            self._room.notify()
        if len(self._results) >= self._notify_at or result.put is None or not self._in_flight:
            self._ready.notify()

    def _wake_worker(self) -> None:
        """Under the lock: a file may be taken; wake a waiting thread, and start one more:
        where every upload waits, while more files wait than threads do; where some need not
        (``start``), only if every thread is waiting for an upload of its own (none would come
        back for the file). A woken thread counts as waiting until it runs."""
        if self._closing:
            return
        if self._start is None:
            self._more.notify()
            if len(self.pending) <= self._idle or len(self._threads) >= self._count:
                return
        elif not self._can_take():
            return
        elif self._idle:
            self._more.notify()
            return
        elif len(self._threads) >= self._count or len(self._threads) > self._blocked:
            return
        t = threading.Thread(
            target=self._run, name=f"hoard-upload_{len(self._threads)}", daemon=True
        )
        self._threads.append(t)
        t.start()

    def put(self, action: Action) -> bool:
        """Queue a first attempt, once fewer than a window wait (the feeder blocks until then);
        False, not queued, once no new file starts."""
        with self._lock:
            while len(self.pending) >= self._window and not self._stopped():
                self._room.wait(_WAIT_S)  # a stop is an Event: look again now and then
            if self._stopped():
                return False
            self.pending.append((action, 1, True))
            self._wake_worker()
            return True

    def fed(self) -> None:
        """No more first attempts will come."""
        with self._lock:
            self._feeding = False
            self._ready.notify()

    @property
    def feeding(self) -> bool:
        with self._lock:
            return self._feeding

    def collect(self, timeout_s: float) -> list[_Result] | None:
        """The results waiting, after at most ``timeout_s`` ([] if none came); None once no
        file is in flight and none will be taken."""
        with self._lock:
            if not self._results:
                if not self._in_flight and (
                    self._halted or (not self.pending and not self._feeding)
                ):
                    return None
                self._ready.wait(timeout_s)
            results, self._results = self._results, []
            return results

    def handled(self, count: int) -> None:
        """``count`` collected results are handled: as many more files may be taken."""
        with self._lock:
            self._taken -= count
            self._more.notify_all()

    def give(self, action: Action, attempt: int) -> None:
        """Take ``action`` next (a retry)."""
        with self._lock:
            self.pending.appendleft((action, attempt, True))
            self._wake_worker()

    def queued(self) -> int:
        """Files waiting to be taken."""
        with self._lock:
            return len(self.pending)

    def halt(self) -> bool:
        """No new file starts; whether some were left untaken."""
        with self._lock:
            self._halted = True
            self._room.notify_all()
            return bool(self.pending)

    def close(self) -> None:
        """Let the uploads in flight finish, then end the threads."""
        with self._lock:
            self._closing = True
            self._more.notify_all()
            self._room.notify_all()
            threads = list(self._threads)
        for t in threads:
            t.join()
        with self._lock:
            while self._in_flight:  # started without waiting: their ends are still to come
                self._ready.wait(_WAIT_S)


class _Feeder:
    """A thread that reads the uploads (from a plan on disk, or from planning itself) into the
    pool, a window ahead of it, so that the coordinator never waits for them. An error
    reading them ends the feed and is kept for the coordinator to raise."""

    def __init__(
        self, pool: _Workers, first: Sequence[Action], rest: Iterator[Sequence[Action]]
    ) -> None:
        self.pool, self.first, self.rest = pool, first, rest
        self.error: BaseException | None = None
        self.unqueued = 0  # of the batch it was reading when the run stopped
        self.exhausted = False
        self.thread = threading.Thread(target=self._run, name="hoard-feed", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for batch in itertools.chain((self.first,), self.rest):
                for i, a in enumerate(batch):
                    if not self.pool.put(a):
                        self.unqueued = len(batch) - i
                        return
            self.exhausted = True
        except BaseException as exc:
            self.error = exc
        finally:
            self.pool.fed()

    def end(self, count: bool) -> int:
        """Wait for the thread to end (the pool closed or halted: it stops at its next
        upload), then close the uploads; how many it read and did not queue, and with
        ``count`` every one left too (read to the end)."""
        self.thread.join()
        left = self.unqueued + (sum(len(b) for b in self.rest) if count else 0)
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()
        return left


def execute(
    uploads: Iterable[Sequence[Action]],
    backend: Backend,
    catalog: Catalog,
    job: Callable[[], int],
    tier: str | None,
    workers: int,
    reporter: Reporter,
    clock: Clock,
    prepare: Prepare,
    stop: threading.Event | None = None,
    planning: threading.Event | None = None,
) -> TransferStats:
    """Upload each action; once ``stop`` is set no new file starts, files in flight finish.

    ``uploads`` comes a batch at a time (from a plan on disk, or from planning as it
    decides) and is read on a thread of its own, never more than a window ahead of the
    uploads in flight. The first batch is read on this thread: nothing to upload starts no
    thread and no job (``job`` records one once there is an upload). An error reading the
    first batch is raised; a later one becomes ``feed_error``, once the uploads in flight are
    finished and recorded (a stop that planning saw first: ``interrupted``). When the run
    stops early, the uploads never started are counted as not attempted: the rest of
    ``uploads`` is read for that. ``planning``: the uploads come from planning itself, which
    stops at its next file once this is set (when the uploads end); the files it has not
    reached are not counted (``unexamined`` says so).

    A result is recorded only after the store confirmed the object (and made it durable,
    see ``Backend.flush``), a batch at a time: a crash loses at most the last batch's
    records, whose files the next run finds on the remote (adopted) or uploads again."""
    stats = TransferStats()
    it = iter(uploads)
    first = next((b for b in it if b), None)
    if first is None:
        return stats
    job_id = job()
    recorder = _Recorder(backend, catalog, clock, stats)
    pool = _Workers(
        workers,
        lambda a, n: _upload(backend, catalog, reporter, a, n, tier, clock),
        2 * max(1, workers),
        stop,
        (
            (lambda a, n, done, wait: _start(backend, a, n, tier, clock, done, wait))
            if type(backend).start_put is not Backend.start_put  # it may start some without waiting
            else None
        ),
    )
    feeder = _Feeder(pool, first, it)
    streak = FailureStreak()
    completed = False
    try:
        while (results := pool.collect(_WAIT_S)) is not None:
            for r in results:
                retry = _handle(r, backend, recorder, job_id, reporter, stats, prepare)
                if retry is not None:
                    pool.give(retry, 2)
                why = streak.add(r.put is not None, r.transient, r.error)
                if why and not stats.stopped_by:
                    stats.stopped_by = why
            recorder.flush_if_due()
            if stop is not None and stop.is_set() and not stats.stopped_by:
                if pool.halt() or pool.feeding:
                    stats.interrupted = True
                    stats.stopped_by = "asked to stop"
            elif stats.stopped_by:
                pool.halt()
            pool.handled(len(results))
        completed = True
    finally:
        try:
            if planning is not None:
                planning.set()  # stop planning while the uploads in flight finish
            pool.close()
            # count what is left only on the way out of a finished loop, not of an error
            unqueued = feeder.end(completed and planning is None)
        finally:
            recorder.flush()
    stats.not_attempted = pool.queued() + unqueued
    stats.failed += stats.not_attempted
    stats.unexamined = planning is not None and not feeder.exhausted
    stopped_unseen = stats.not_attempted or stats.unexamined  # before the loop saw the stop
    if stop is not None and stop.is_set() and not stats.stopped_by and stopped_unseen:
        stats.interrupted = True
        stats.stopped_by = "asked to stop"
    if isinstance(feeder.error, Interrupted):
        if not stats.stopped_by:  # planning saw the stop first (not the end of the uploads)
            stats.interrupted = True
            stats.stopped_by = "asked to stop"
    else:
        stats.feed_error = feeder.error
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
    changed = _changed(a) if r.stat_later else r.changed
    if r.put is not None and not changed:
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
    if changed and r.attempt == 1:
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
    elif changed:
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
