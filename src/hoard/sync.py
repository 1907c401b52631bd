"""`hoard sync`: a one-way mirror of a source folder to a prefix, whose deletes are guarded.

The plan merges the source (sorted by key, on disk: ``spill``) with the remote listing,
streamed in key order (``mirror.march``): source-only keys are uploaded, keys on both sides are
compared as `push` compares them (catalog first, the hash in the object's metadata second, never
the ETag as an MD5), and remote-only keys are extras. Uploads run first; extras are deleted
last, only with `--delete`, and only when every guard in ``guards`` agrees — otherwise they are
withheld and counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hoard import metadata as meta
from hoard.backends.base import Backend
from hoard.catalog import Catalog
from hoard.errors import BackendError, NotFound, UsageError
from hoard.guards import Facts, MaxDelete, refusals
from hoard.keys import join_key
from hoard.mirror import ListingFailed, march
from hoard.model import ActionKind, Delete, Problem, RemoteObject
from hoard.plan import Known, Plan, decide
from hoard.push import (
    Examined,
    PushResult,
    PushSettings,
    examine,
    outcome_of,
    refuse_conflicts,
    upload_phase,
)
from hoard.report import Reporter
from hoard.scan import ScanStats, Source
from hoard.spill import SortedByKey

Clock = Callable[[], int]
DELETE_BATCH = 1000


@dataclass(frozen=True)
class SyncSettings:
    """A push of one source, plus what the mirror may delete and under which guards."""

    push: PushSettings
    store: str  # the bucket (or folder) name, for the whole-bucket guard
    delete: bool = False
    max_delete: str = "20%"
    force: bool = False
    allow_empty_source: bool = False
    marker: str | None = None
    backup_prefix: str | None = None
    delete_whole_bucket: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.push.snapshot(),
            "mode": "sync",
            "delete": self.delete,
            "max_delete": self.max_delete,
            "force": self.force,
            "allow_empty_source": self.allow_empty_source,
            "marker": self.marker,
            "backup_prefix": self.backup_prefix,
        }


@dataclass
class SyncResult(PushResult):
    deleted: int = 0
    delete_withheld: int = 0
    delete_changed: int = 0
    delete_failed: int = 0
    refusals: list[str] = field(default_factory=list)
    early_deletion: list[str] = field(default_factory=list)
    listing_error: str = ""
    delete_requested: bool = False

    @property
    def failed(self) -> int:
        return super().failed + self.delete_failed

    @property
    def extras(self) -> int:
        return len(self.plan.deletes)

    def summary_extra(self) -> str:
        if self.delete_requested:
            return f" deleted={self.deleted} delete_withheld={self.delete_withheld}"
        return f" extras={self.extras}" if self.extras else ""

    def counts(self) -> dict[str, int]:
        return {
            **super().counts(),
            "deleted": self.deleted,
            "delete_withheld": self.delete_withheld,
        }


def _prefix_of(s: PushSettings) -> str:
    return s.prefix.strip("/") + "/" if s.prefix.strip("/") else ""


def build_sync_plan(
    s: SyncSettings,
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    now: datetime,
    stats: ScanStats,
    stop: threading.Event | None = None,
) -> tuple[Plan, int, str]:
    """The mirror plan, the number of objects under the prefix, and a listing error (if any)."""
    plan = Plan(keep_skips=s.push.dry_run)
    source_side = SortedByKey()  # on disk: memory does not grow with the tree
    try:
        source_side.add_all(examine(s.push, catalog, reporter, now, stats, plan, stop))
        remote_total, error = _march(s, source_side.sorted(), backend, catalog, reporter, plan)
    finally:
        source_side.close()
    plan.close()
    return plan, remote_total, error


def _march(
    s: SyncSettings,
    source_side: Iterator[tuple[str, Examined]],
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    plan: Plan,
) -> tuple[int, str]:
    failed = ListingFailed()
    remote_total = 0
    for key, local, obj in march(source_side, backend.list(_prefix_of(s.push)), failed):
        if obj is not None:
            remote_total += 1
        if local is None:
            assert obj is not None
            rec = catalog.object_record(backend.url, key)
            plan.deletes.append(
                Delete(key, "extra: not in the source", obj, rec.path if rec and rec.path else "")
            )
            continue
        known = _known(local, obj, backend, catalog, listing_broken=failed.error is not None)
        action = decide(local.file, key, local.hash, known, local.hashed)
        if known is None and catalog.object_record(backend.url, key) is not None:
            action = replace(action, reason="new (missing on the remote)")
        plan.add(action)
        reporter.examined(1)
    return remote_total, str(failed.error) if failed.error else ""


def _known(
    local: Examined,
    obj: RemoteObject | None,
    backend: Backend,
    catalog: Catalog,
    listing_broken: bool,
) -> Known | None:
    rec = catalog.object_record(backend.url, local.key)
    if obj is None:
        # Not listed: gone from the remote, unless the listing broke off before this key.
        if listing_broken and rec is not None:
            return Known(rec.size, rec.hash, "catalog")
        return None
    if rec is not None and rec.etag == obj.etag and rec.size == obj.size:
        return Known(rec.size, rec.hash, "catalog")
    if obj.size != local.file.size:
        return Known(obj.size, "unknown", "remote")
    full = obj if backend.capabilities.listing_has_metadata else _stat(backend, obj.key)
    if full is None:
        return None
    recorded = meta.read(full.metadata)
    return Known(full.size, recorded.hash if recorded else None, "remote", full)


def _stat(backend: Backend, key: str) -> RemoteObject | None:
    try:
        return backend.stat(key)
    except NotFound:
        return None


def early_deletion_notes(deletes: list[Delete], backend: Backend, now_ns: int) -> list[str]:
    minimum = backend.capabilities.min_storage_days or {}
    notes = []
    for d in deletes:
        days = minimum.get(d.remote.tier)
        if days is None or not d.remote.modified_ns:
            continue
        age = (now_ns - d.remote.modified_ns) / 86_400e9
        if age < days:
            notes.append(
                f"{d.key} is in {d.remote.tier}, stored {age:.0f} days ago: deleting "
                f"it now is billed as if it had been stored {days} days"
            )
    return notes


def run_sync(
    s: SyncSettings,
    backend: Backend,
    catalog: Catalog,
    reporter: Reporter,
    clock: Clock,
    job_id: int | None = None,
    stop: threading.Event | None = None,
) -> SyncResult:
    """Plan the mirror; unless dry-run, upload, then delete extras if every guard agrees.
    ``job_id`` and ``stop`` as for ``run_push``; a stopped sync deletes nothing."""
    push = s.push
    limit = MaxDelete.parse(s.max_delete)
    prefix = _prefix_of(push)
    if (
        s.delete
        and not prefix
        and backend.capabilities.scheme != "file"
        and s.delete_whole_bucket != s.store
    ):
        raise UsageError(
            f"--delete on the whole bucket {s.store!r} (no prefix) could empty "
            f"it; name it again with --delete-whole-bucket {s.store} to go on"
        )
    source = Source.parse(push.sources[0], push.source_base(0))
    device_now = os.stat(source.root).st_dev
    device_last = catalog.source_device(backend.url, prefix, source.root)
    marker_present = s.marker is None or os.path.exists(os.path.join(source.root, s.marker))

    started = clock()
    now = datetime.fromtimestamp(started / 1e9)
    stats = ScanStats()
    plan, remote_total, listing_error = build_sync_plan(
        s, backend, catalog, reporter, now, stats, stop
    )
    refuse_conflicts(plan)
    result = SyncResult(plan, stats, listing_error=listing_error, delete_requested=s.delete)
    result.skipped = plan.totals()["skip"]

    def facts(extra_errors: tuple[str, ...] = ()) -> Facts:
        errors = tuple(f"{p.path}: {p.message}" for p in plan.problems if p.fails)
        errors += tuple(
            f"{a.file.path}: {a.reason}" for a in plan.kept() if a.kind is ActionKind.FAIL
        )
        if listing_error:
            errors += (f"listing the remote failed: {listing_error}",)
        return Facts(
            len(plan.deletes),
            remote_total,
            stats.files,
            device_now,
            device_last,
            s.marker,
            marker_present,
            errors + extra_errors,
        )

    if s.delete:
        result.refusals = refusals(facts(), limit, s.force, s.allow_empty_source)
        result.early_deletion = early_deletion_notes(plan.deletes, backend, started)
        for note in result.early_deletion:
            reporter.problem(Problem(note.split(" ", 1)[0], "early deletion: " + note))
    if push.dry_run:
        result.outcome = "dry-run"
        if s.delete and result.refusals:
            result.delete_withheld = len(plan.deletes)
        return result

    if job_id is None:
        job_id = catalog.start_job("sync", s.snapshot(), started)
    result.job_id = job_id
    try:
        result.transfer = upload_phase(
            plan, push, backend, catalog, job_id, reporter, clock, now, stop
        )
        if s.delete and plan.deletes:
            stopped = ("the run was stopped before every file was uploaded",)
            result.refusals = refusals(
                facts(tuple(result.transfer.errors) + (stopped if stop and stop.is_set() else ())),
                limit,
                s.force,
                s.allow_empty_source,
            )
            if result.refusals:
                result.delete_withheld = len(plan.deletes)
            else:
                _delete_phase(result, s, backend, catalog, job_id, now, clock)
    except BaseException:
        result.outcome = "interrupted"
        catalog.finish_job(job_id, clock(), result.outcome, result.counts())
        raise
    result.outcome = outcome_of(result)
    if result.outcome == "ok" and not result.listing_error:
        catalog.remember_source_device(backend.url, prefix, source.root, device_now, clock())
    catalog.finish_job(job_id, clock(), result.outcome, result.counts())
    return result


def _delete_phase(
    result: SyncResult,
    s: SyncSettings,
    backend: Backend,
    catalog: Catalog,
    job_id: int,
    now: datetime,
    clock: Clock,
) -> None:
    """Delete (or move under the backup prefix) every extra, each only if unchanged since
    it was listed; record every outcome as a transfer of the job."""
    stamp = now.strftime("%Y-%m-%d_%H-%M-%S")
    moved_to = join_key(s.backup_prefix, stamp) + "/" if s.backup_prefix else ""

    def record(
        d: Delete, outcome: str, began: int, error: str = "", reason: str | None = None
    ) -> None:
        catalog.record_delete(
            job_id,
            backend.url,
            d.key,
            d.path,
            reason or d.reason,
            outcome,
            d.remote.size,
            began,
            clock(),
            error,
        )

    deletes = result.plan.deletes
    for start in range(0, len(deletes), DELETE_BATCH):
        ready: list[Delete] = []
        for d in deletes[start : start + DELETE_BATCH]:
            began = clock()
            try:
                if moved_to:
                    backend.copy(d.key, moved_to + d.key)
                ready.append(d)
            except BackendError as exc:
                result.delete_failed += 1
                record(d, "failed", began, f"not moved to the backup prefix: {exc}")
        began = clock()
        try:
            kept = set(
                backend.delete(
                    [d.key for d in ready], if_match={d.key: d.remote.etag for d in ready}
                )
            )
        except BackendError as exc:
            for d in ready:
                record(d, "failed", began, str(exc))
            result.delete_failed += len(ready)
            continue
        for d in ready:
            if d.key in kept:
                result.delete_changed += 1
                record(d, "kept", began, "changed on the remote since it was listed; left alone")
            else:
                result.deleted += 1
                record(
                    d, "ok", began, reason=f"{d.reason}; moved to {moved_to}" if moved_to else None
                )
