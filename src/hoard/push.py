"""`hoard push`: sources → scan → hash where needed → keys → plan → transfer → catalog.

``build_plan`` gathers what the pure planner needs (the catalog's records, content hashes, and
the remote's objects where the catalog knows nothing); ``run_push`` records a job and executes
exactly that plan.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from hoard.backends.base import Backend
from hoard.catalog import Catalog
from hoard.errors import Interrupted, InvalidKey, KeyConflict, TemplateError
from hoard.hashing import hash_file, split_hash
from hoard.keys import Context, Template, join_key
from hoard.model import Action, ActionKind, LocalFile, Problem
from hoard.plan import Known, Plan, decide
from hoard.remoteindex import RemoteIndex
from hoard.report import Reporter
from hoard.scan import Entry, Filters, ScanStats, Source, to_local_file, walk_runs
from hoard.transfer import TransferStats, execute

Clock = Callable[[], int]
HASH_BATCH = 256
#: Files are hashed a group at a time, each group one file or more of at least this many bytes
#: together, and a batch that makes one group is hashed on the planning thread itself: a pool
#: task per small file cost more in thread hand-offs than its hash (2,000 warm files of 4 KiB:
#: 0.34 s on 8 threads a file at a time, 0.08 s a batch at a time on one thread). Large files
#: still get a task each, and many mid-sized ones spread over the pool.
HASH_GROUP_BYTES = 1 << 20


@dataclass(frozen=True)
class PushSettings:
    """Everything a push ran with: stored with the job as its snapshot."""

    sources: tuple[str, ...]
    remote: str
    prefix: str = ""
    base: str | None = None
    template: str = "{rel_path}"
    tier: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_names: tuple[str, ...] = ()
    skip_paths: tuple[str, ...] = ()
    follow_symlinks: bool = False
    hash_algorithm: str = "blake3"
    workers: int = 8
    dry_run: bool = False
    #: A base per source (workflows); empty: ``base`` for every source.
    bases: tuple[str | None, ...] = ()

    def source_base(self, index: int) -> str | None:
        return self.bases[index] if self.bases else self.base

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PushResult:
    plan: Plan
    scan: ScanStats
    job_id: int | None = None
    transfer: TransferStats = field(default_factory=TransferStats)
    skipped: int = 0
    outcome: str = "ok"

    @property
    def failed(self) -> int:
        """Files left out: failed in the plan, unreadable folders, failed or not attempted."""
        return self.plan.files_lost() + self.transfer.failed

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.plan.problems if not p.fails)

    def summary_extra(self) -> str:
        """What the one-line summary adds after the failed count (a sync's deletes)."""
        return ""

    def counts(self) -> dict[str, int]:
        return {
            "scanned": self.scan.files,
            "uploaded": self.transfer.uploaded,
            "resumed": self.transfer.resumed,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.transfer.bytes,
        }


def _hash_or_problem(f: LocalFile, algorithm: str) -> str | Problem:
    try:
        return hash_file(f.path, algorithm, f.size)
    except OSError as exc:
        return Problem(f.path, f"cannot read: {exc.strerror or exc}", fails=True)


def _hash_all(
    pool: ThreadPoolExecutor, files: list[LocalFile], algorithm: str
) -> Iterator[str | Problem]:
    """Each file's hash (or why it cannot be read), in order: the files in groups of at least
    ``HASH_GROUP_BYTES``, a group per pool task; a single group on this thread."""
    groups: list[list[LocalFile]] = []
    group: list[LocalFile] = []
    size = 0
    for f in files:
        group.append(f)
        size += f.size
        if size >= HASH_GROUP_BYTES:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)

    def hash_group(g: list[LocalFile]) -> list[str | Problem]:
        return [_hash_or_problem(f, algorithm) for f in g]

    if len(groups) == 1:
        return iter(hash_group(groups[0]))
    return itertools.chain.from_iterable(pool.map(hash_group, groups))


class StopFlag(Protocol):
    """What planning asks, between files, whether to stop: a ``threading.Event``, or
    ``_Halted`` (the caller's stop, or the uploads have ended)."""

    def is_set(self) -> bool: ...


class _Halted:
    """Set when the caller asks to stop or when the uploads have ended (an error or a streak
    stopped them, or Ctrl-C): planning, which feeds them, then stops at its next file."""

    def __init__(self, stop: threading.Event | None) -> None:
        self.stop, self.ended = stop, threading.Event()

    def is_set(self) -> bool:
        return self.ended.is_set() or (self.stop is not None and self.stop.is_set())


#: A scanned file on its way through planning: the walk's entry, its LocalFile (made only
#: when something needs it), key, content hash, whether the hash was read this run, and the
#: key's object as (key, size, hash) when the catalog vouches for the file from one row.
_Examined = tuple[Entry, LocalFile | None, str, str, bool, tuple[str, int, str] | None]


def _examine_batches(
    s: PushSettings,
    catalog: Catalog,
    reporter: Reporter,
    now: datetime,
    stats: ScanStats,
    plan: Plan,
    stop: StopFlag | None = None,
    remote: str | None = None,
    only_count_unchanged: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, list[_Examined]]]:
    """Scan the sources and, a batch at a time, take each file's content hash from the
    catalog when size, mtime_ns and inode match (else read it, in parallel) and render its
    key. A file that cannot be read or keyed becomes a FAIL action in ``plan`` and a reported
    problem. When ``stop`` is set, raise Interrupted before the next file. Yields each batch
    as (files examined, what is left to decide).

    A file the catalog vouches for costs no LocalFile when the template is `{rel_path}`; with
    ``remote`` too, one catalog row (its object's, joined with its file's) each. While
    ``only_count_unchanged()`` says so (asked per batch), such a file is only counted as a
    skip whose key is unique (``Plan.count_unique_skips``) and left out of the batch."""
    template = Template.compile(s.template)
    rel_only = template.only_rel_path
    prefix = s.prefix.strip("/") + "/" if s.prefix.strip("/") else ""
    algorithm, algorithm_tag = s.hash_algorithm, s.hash_algorithm + ":"
    sources = [Source.parse(src, s.source_base(i)) for i, src in enumerate(s.sources)]
    filters = Filters.build(s.include, s.exclude, s.skip_names, s.skip_paths)

    def on_problem(p: Problem) -> None:
        plan.problems.append(p)
        reporter.problem(p)

    runs = walk_runs(sources, filters, on_problem, s.follow_symlinks, stats)
    with ThreadPoolExecutor(
        max_workers=max(1, min(s.workers, 8)), thread_name_prefix="hoard-hash"
    ) as pool:
        for batch in _batches(runs, HASH_BATCH):
            examined, first = len(batch), batch[0][0]
            vouched: dict[int, tuple[str, int, str]] = {}
            if remote is not None and rel_only:
                if only_count_unchanged is not None and only_count_unchanged():
                    batch = _changed(batch, catalog, remote, prefix, algorithm)
                    plan.count_unique_skips(examined - len(batch))
                else:
                    vouched = _vouched(batch, catalog, remote, prefix, template, algorithm)
            if len(vouched) == len(batch):  # the whole batch unchanged: the rerun's case
                if stop is not None and stop.is_set():
                    raise Interrupted(f"stopped while planning, before {first}")
                yield (
                    examined,
                    [
                        (e, None, v[0], v[2], False, v)
                        for e, v in zip(batch, vouched.values(), strict=True)
                    ],
                )
                continue
            records = catalog.file_hashes([e[0] for i, e in enumerate(batch) if i not in vouched])
            known: list[str | None] = []
            todo: list[LocalFile] = []
            for i, e in enumerate(batch):
                rec = records.get(e[0])
                info = e[2]
                if i in vouched:
                    known.append(vouched[i][2])
                elif (
                    rec is not None
                    and rec[4]
                    and rec[1] == info.st_size
                    and rec[2] == info.st_mtime_ns
                    and rec[3] == info.st_ino
                    and (rec[4].startswith(algorithm_tag) or rec[4] == algorithm)
                ):
                    known.append(rec[4])
                else:
                    known.append(None)
                    todo.append(to_local_file(e))
            fresh = _hash_all(pool, todo, algorithm)
            files = iter(todo)
            out: list[_Examined] = []
            for i, (e, h) in enumerate(zip(batch, known, strict=True)):
                f: LocalFile | None = None
                hashed = h is None
                if h is None:
                    f = next(files)
                    got = next(fresh)
                if stop is not None and stop.is_set():
                    raise Interrupted(f"stopped while planning, before {e[0]}")
                obj = vouched.get(i)
                if obj is not None:
                    out.append((e, None, obj[0], obj[2], False, obj))
                    continue
                if h is None:
                    assert f is not None
                    if isinstance(got, Problem):
                        plan.fail(f, "", got.message)
                        on_problem(got)
                        continue
                    h = got
                try:
                    if rel_only:
                        key = prefix + template.render_rel(e[1], e[0])
                    else:
                        f = f or to_local_file(e)
                        key = prefix + template.render(f, Context(now, split_hash(h)[1]))
                except (InvalidKey, TemplateError) as exc:
                    plan.fail(f or to_local_file(e), "", str(exc))
                    on_problem(Problem(e[0], str(exc)))
                    continue
                out.append((e, f, key, h, hashed, None))
            yield examined, out


def _batches(runs: Iterator[list[Entry]], size: int) -> Iterator[list[Entry]]:
    """The walk's runs joined into batches of at least ``size`` files (the last may be
    smaller), so that a folder of few files does not cost a catalog query of its own."""
    batch: list[Entry] = []
    for run in runs:
        if batch:
            batch += run
        else:
            batch = run
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _changed(
    batch: list[Entry], catalog: Catalog, remote: str, prefix: str, algorithm: str
) -> list[Entry]:
    """The files of a batch that ``_vouched`` would not vouch for, in order; the rest cost
    a narrower catalog row each and no key check: a key is looked up as the walk spells it,
    and one the catalog holds, recorded for this very path, was checked when it was rendered
    (``validate_key`` keeps a valid NFC key as it is)."""
    keys = [prefix + e[1] for e in batch]
    rows = catalog.unchanged_sources(remote, keys, algorithm)
    changed: list[Entry] = []
    for key, e in zip(keys, batch, strict=True):
        r = rows.get(key)
        if r is not None and r[5] and r[1] == e[0]:
            info = e[2]
            if r[2] == info.st_size and r[3] == info.st_mtime_ns and r[4] == info.st_ino:
                continue
        changed.append(e)
    return changed


def _vouched(
    batch: list[Entry],
    catalog: Catalog,
    remote: str,
    prefix: str,
    template: Template,
    algorithm: str,
) -> dict[int, tuple[str, int, str]]:
    """The files of a batch (by position) whose key's object the catalog records as made
    from this very file, at this size, mtime_ns and inode, with this content hash: unchanged,
    decided from one catalog row each. Each with that object as (key, size, hash)."""
    keyed: list[tuple[int, str]] = []
    for i, e in enumerate(batch):
        try:
            keyed.append((i, prefix + template.render_rel(e[1], e[0])))
        except InvalidKey:
            continue  # reported when the batch is examined
    rows = catalog.objects_with_files(remote, [k for _, k in keyed])
    tag = algorithm + ":"
    found: dict[int, tuple[str, int, str]] = {}
    for i, key in keyed:
        r = rows.get(key)
        if r is None:
            continue
        path, info, h = batch[i][0], batch[i][2], r[7]
        if (
            h
            and r[3] == path
            and r[2] == h
            and r[4] == info.st_size
            and r[5] == info.st_mtime_ns
            and r[6] == info.st_ino
            and (h.startswith(tag) or h == algorithm)
        ):
            found[i] = (key, r[1], h)
    return found


@dataclass(frozen=True)
class Examined:
    """A scanned file with its content hash and rendered key."""

    file: LocalFile
    key: str
    hash: str
    hashed: bool  # read this run (not taken from the catalog)


def examine(
    s: PushSettings,
    catalog: Catalog,
    reporter: Reporter,
    now: datetime,
    stats: ScanStats,
    plan: Plan,
    stop: threading.Event | None = None,
) -> Iterator[Examined]:
    """Every scanned file with its hash and key (see ``_examine_batches``)."""
    for _, batch in _examine_batches(s, catalog, reporter, now, stats, plan, stop):
        for e, f, key, h, hashed, _ in batch:
            yield Examined(f or to_local_file(e), key, h, hashed)


def build_plan(
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    now: datetime,
    stats: ScanStats,
    stop: threading.Event | None = None,
) -> Plan:
    """Scan, hash where needed, render keys and decide. Moves nothing, writes nothing.

    A real run's plan keeps only what it acts on (see ``Plan``); a dry run keeps every
    decision, to print it."""
    plan = Plan(keep_skips=s.dry_run)
    for _ in _decide_all(plan, s, backend, catalog, reporter, now, stats, stop, False):
        pass
    return plan


def _decide_all(
    plan: Plan,
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    now: datetime,
    stats: ScanStats,
    stop: StopFlag | None,
    stream: bool,
) -> Iterator[list[Action]]:
    """``build_plan``'s work, deciding into ``plan``. With ``stream``, the uploads no other
    file can share a key with are yielded as soon as their batch is decided, instead of
    kept (they are still counted); see ``streams``."""
    remote_index = RemoteIndex(backend, s.prefix)
    count_only = not s.dry_run
    # One source keyed by `{rel_path}`: two of its paths render to one key only if they
    # differ in names that NFC makes equal, i.e. only below a folder that holds two such
    # names — and the walk counts that folder before it yields any file below it. Until it
    # has counted one, a key is unique by construction and needs no check.
    one_rel_path_source = streams(s)

    def unique() -> bool:
        return one_rel_path_source and stats.nfc_clashes == 0

    batches = _examine_batches(
        s, catalog, reporter, now, stats, plan, stop, backend.url, unique if count_only else None
    )
    try:
        for examined, batch in batches:
            records = catalog.object_hashes(backend.url, [x[2] for x in batch if x[5] is None])
            handed: list[Action] = []
            for e, f, key, h, hashed, obj in batch:
                rec = obj or records.get(key)
                if count_only and rec is not None and rec[2] == h and not hashed:
                    plan.skip_unchanged(key, e[0], unique())  # what decide() says, no Action
                    continue
                known = Known(rec[1], rec[2], "catalog") if rec else remote_index.known(key)
                a = decide(f or to_local_file(e), key, h, known, hashed)
                if stream and a.kind is ActionKind.UPLOAD and unique():
                    plan.handed_on(a)
                    handed.append(a)
                else:
                    plan.add(a)
            reporter.examined(examined)
            if handed:
                yield handed
    finally:
        remote_index.close()
        plan.close()


def streams(s: PushSettings) -> bool:
    """Whether a real run of ``s`` uploads while it plans: one source keyed by `{rel_path}`
    (see ``_decide_all``). Its uploads start before planning ends; should two names equal in
    NFC turn up, the files found after them wait for the end of planning, and a conflict
    among them refuses the rest of the run."""
    return len(s.sources) == 1 and Template.compile(s.template).only_rel_path


def refuse_conflicts(plan: Plan) -> None:
    conflicts = plan.conflicts
    if conflicts:
        first = conflicts[0]
        raise KeyConflict(
            f"{len(conflicts)} files share keys, e.g. {first.key!r}: "
            f"{first.reason.removeprefix('conflict: ')}"
        )


def _kept_uploads(
    plan: Plan,
    backend: Backend,
    catalog: Catalog,
    job: Callable[[], int],
    reporter: Reporter,
    clock: Clock,
) -> Iterator[list[Action]]:
    """Record what the plan learned about skipped files, report its totals, then yield the
    uploads it kept, one at a time (all of it as it is read: on the transfer's feeding
    thread, the first part on the caller's). The plan's actions are streamed, twice."""
    for a in plan.kept():
        if a.kind is ActionKind.SKIP and a.adopt is not None:
            o = a.adopt
            catalog.adopt_object(
                job(),
                backend.url,
                a.key,
                a.file,
                a.hash,
                o.size,
                o.etag,
                o.tier,
                o.metadata,
                clock(),
            )
        elif a.kind is ActionKind.SKIP and a.hashed:
            catalog.remember_hash(a.file, a.hash, clock())
    totals = plan.totals()
    reporter.planned(totals["upload"], totals["upload_bytes"])
    for a in plan.kept():
        if a.kind is ActionKind.UPLOAD:
            yield [a]


def upload_phase(
    plan: Plan,
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    job_id: int,
    reporter: Reporter,
    clock: Clock,
    now: datetime,
    stop: threading.Event | None = None,
) -> TransferStats:
    """Record what the plan learned about skipped files, then execute its uploads (no new
    file starts once ``stop`` is set)."""
    uploads = _kept_uploads(plan, backend, catalog, lambda: job_id, reporter, clock)
    st = _execute(uploads, s, backend, catalog, lambda: job_id, reporter, clock, now, stop)
    if st.feed_error is not None:
        raise st.feed_error
    return st


def _execute(
    uploads: Iterable[list[Action]],
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    job: Callable[[], int],
    reporter: Reporter,
    clock: Clock,
    now: datetime,
    stop: threading.Event | None,
    planning: threading.Event | None = None,
) -> TransferStats:
    """``transfer.execute`` with this push's tier and workers; a file that changed while it
    was uploaded is prepared again (``_prepare_again``)."""
    template = Template.compile(s.template)

    def prepare(a: Action) -> Action | None:
        return _prepare_again(a, s, template, now, backend)

    return execute(
        uploads,
        backend,
        catalog,
        job,
        s.tier,
        s.workers,
        reporter,
        clock,
        prepare,
        stop,
        planning,
    )


class _Job:
    """The run's job, recorded when first asked for (from the planning thread or this one):
    a run refused before anything moved records none."""

    def __init__(self, catalog: Catalog, s: PushSettings, started: int, job_id: int | None):
        self.catalog, self.s, self.started, self.id = catalog, s, started, job_id
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            if self.id is None:
                self.id = self.catalog.start_job("push", self.s.snapshot(), self.started)
            return self.id


def run_push(
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    clock: Clock,
    job_id: int | None = None,
    stop: threading.Event | None = None,
) -> PushResult:
    """Plan, then (unless dry-run) record a job and execute exactly that plan; with one
    `{rel_path}` source, upload while planning (see ``streams``).

    ``job_id``: a job the caller recorded already (a workflow records its snapshot before it
    plans); otherwise the push records its own. ``stop``: set it to stop between files."""
    started = clock()
    now = datetime.fromtimestamp(started / 1e9)
    stats = ScanStats()
    job = _Job(catalog, s, started, job_id)
    if s.dry_run or not streams(s):
        plan = build_plan(s, backend, catalog, reporter, now, stats, stop)
        result = PushResult(plan, stats)
        refuse_conflicts(plan)
        result.skipped = plan.totals()["skip"]
        if s.dry_run:
            result.outcome = "dry-run"
            return result
        uploads = _kept_uploads(plan, backend, catalog, job, reporter, clock)
        planning = None
    else:
        plan = Plan(keep_skips=False)
        result = PushResult(plan, stats)
        halted = _Halted(stop)
        planning = halted.ended
        uploads = _planned_uploads(
            plan, s, backend, catalog, job, reporter, clock, now, stats, halted
        )
    try:
        result.transfer = _execute(
            uploads, s, backend, catalog, job, reporter, clock, now, stop, planning
        )
        if result.transfer.feed_error is not None:
            raise result.transfer.feed_error
    except BaseException as exc:
        if job.id is None:
            raise  # nothing moved, nothing recorded
        result.job_id = job.id
        stopped = isinstance(exc, Interrupted | KeyboardInterrupt)
        result.outcome = "interrupted" if stopped else "failed"
        catalog.finish_job(job.id, clock(), result.outcome, result.counts())
        if isinstance(exc, KeyConflict) and result.transfer.uploaded:
            raise KeyConflict(
                f"{exc}; the {result.transfer.uploaded} files uploaded before the planning "
                f"found their names are recorded (job {job.id})"
            ) from None
        raise
    result.skipped = plan.totals()["skip"]
    result.job_id = job()
    result.outcome = outcome_of(result)
    catalog.finish_job(result.job_id, clock(), result.outcome, result.counts())
    return result


def _planned_uploads(
    plan: Plan,
    s: PushSettings,
    backend: Backend,
    catalog: Catalog,
    job: Callable[[], int],
    reporter: Reporter,
    clock: Clock,
    now: datetime,
    stats: ScanStats,
    stop: StopFlag,
) -> Iterator[list[Action]]:
    """Planning that yields the uploads no other file can share a key with as soon as their
    batch is decided, then (no conflict found) the uploads it kept."""
    yield from _decide_all(plan, s, backend, catalog, reporter, now, stats, stop, True)
    refuse_conflicts(plan)
    yield from _kept_uploads(plan, backend, catalog, job, reporter, clock)


def outcome_of(result: PushResult) -> str:
    if result.transfer.interrupted:
        return "interrupted"
    if result.transfer.stopped_by:
        return "aborted"
    return "failed" if result.failed else "ok"


def _prepare_again(
    a: Action, s: PushSettings, template: Template, now: datetime, backend: Backend
) -> Action | None:
    """A fresh stat, hash and key for a file that changed during its upload."""
    try:
        st = os.stat(a.file.path)
        f = replace(
            a.file,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            ctime_ns=st.st_ctime_ns,
            atime_ns=st.st_atime_ns,
            inode=st.st_ino,
        )
        h = hash_file(f.path, s.hash_algorithm, f.size)
    except OSError:
        return None
    key = join_key(s.prefix, template.render(f, Context(now, split_hash(h)[1])))
    if key != a.key:
        backend.delete([a.key])  # it holds a torn copy
    return Action(
        ActionKind.UPLOAD, f, key, a.reason + " (again: changed during upload)", h, hashed=True
    )
