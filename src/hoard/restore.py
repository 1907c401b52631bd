"""`hoard restore`: select → plan → thaw → wait → download → verify → place.

Objects are selected by remote prefix, by original local path, by job, or by a manifest. The
way back to each file's place comes from the catalog, or from the metadata hoard wrote on the
object when the catalog has no entry. Every planned step has a reason; `--dry-run` prints the
plan, a real run executes it. Archive-tier objects are thawed first and tracked in the catalog
across runs; downloads (``download``) are verified against the recorded hash before they are
renamed into place (``safepath``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from hoard import metadata as meta
from hoard.backends.base import Backend
from hoard.catalog import Catalog, StoredObject
from hoard.download import download_all
from hoard.errors import HoardError, NotFound, UsageError
from hoard.hashing import hash_file, split_hash
from hoard.report import Reporter
from hoard.safepath import Existing, UnsafePath, check_relative, fold, make_folder

Clock = Callable[[], int]
log = logging.getLogger("hoard.restore")
OVERWRITE = ("never", "if-changed", "always")
THAW_SPEEDS = ("expedited", "standard", "bulk")
TYPICAL_WAIT = {"expedited": "1-5 minutes", "standard": "3-12 hours", "bulk": "5-48 hours"}
RANGE_BYTES = 16 << 20
RANGE_WORKERS = 4


@dataclass(frozen=True)
class RestoreSettings:
    url: str | None = None
    to: str | None = None
    in_place: bool = False
    path: str | None = None
    job: int | None = None
    manifest: str | None = None
    overwrite: str = "never"
    thaw: str | None = None
    days: int = 7
    wait: bool = False
    poll_s: float = 60.0
    max_poll_s: float = 1800.0
    workers: int = 8
    dry_run: bool = False


@dataclass(frozen=True)
class Item:
    """One object to bring back, and what is known of the file it came from."""

    store: str
    key: str
    size: int
    hash: str | None
    mtime_ns: int | None
    rel_path: str
    original: str | None
    tier: str


@dataclass(frozen=True)
class Step:
    kind: str  # download, skip, keep, thaw, pending, needs-thaw, folder, fail
    item: Item | None
    root: str
    rel: str
    reason: str

    @property
    def target(self) -> str:
        return os.path.join(self.root, self.rel)


@dataclass
class RestoreResult:
    steps: list[Step] = field(default_factory=list)
    job_id: int | None = None
    restored: int = 0
    bytes: int = 0
    failed: int = 0
    thaw_requested: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    outcome: str = "ok"
    elapsed_s: float = 0.0
    #: why downloads stopped before every file was tried ("": they did not)
    stopped_by: str = ""
    #: downloads never started because of that (counted in ``failed`` too)
    not_attempted: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for s in self.steps if s.kind == kind)

    @property
    def skipped(self) -> int:
        return self.count("skip") + self.count("verified")


# --- selection ------------------------------------------------------------------------------


def _from_metadata(
    store: str, key: str, size: int, tier: str, md: dict[str, str], fallback_rel: str
) -> Item:
    recorded = meta.read(md)
    if recorded is None:
        return Item(store, key, size, None, None, fallback_rel, None, tier)
    return Item(store, key, size, recorded.hash, recorded.mtime_ns, recorded.rel_path, None, tier)


def _from_catalog(o: StoredObject, recorded: meta.Recorded | None = None) -> Item:
    """The item for a catalog record; ``recorded``: its metadata, when already decoded."""
    recorded = recorded or meta.read(o.metadata)
    if recorded is None:
        return Item(o.remote, o.key, o.size, o.hash, None, o.key, o.path, o.tier)
    return Item(
        o.remote, o.key, o.size, o.hash or recorded.hash, recorded.mtime_ns, recorded.rel_path,
        o.path, o.tier,
    )  # fmt: skip


def select_prefix(backend: Backend, prefix: str, catalog: Catalog) -> list[Item]:
    """Every object under ``prefix``: the catalog's record where it has one, else the
    object's own metadata (a lost laptop is not a lost map). The catalog is read once for
    the whole prefix, not once per object."""
    known = {o.key: o for o in catalog.objects_under(backend.url, prefix)}
    items = []
    for obj in backend.list(prefix):
        record = known.get(obj.key)
        recorded = meta.read(record.metadata) if record is not None else None
        if record is not None and recorded is not None:
            items.append(_from_catalog(record, recorded))
            continue
        md = (
            dict(obj.metadata)
            if backend.capabilities.listing_has_metadata
            else dict(backend.stat(obj.key).metadata)
        )
        items.append(
            _from_metadata(backend.url, obj.key, obj.size, obj.tier, md, obj.key[len(prefix) :])
        )
    return items


def select_catalog(objects: Iterable[StoredObject]) -> list[Item]:
    return [_from_catalog(o) for o in objects]


def read_manifest(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"manifest {path}: {exc}") from None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise UsageError(f"manifest {path}: expected a JSON object {{id: original path}}")
    return doc


def select_manifest(
    backend: Backend, prefix: str, manifest: dict[str, str]
) -> tuple[list[Item], list[str]]:
    """Items for the manifest's ids (keys under ``prefix``), measured from the paths' common
    folder, and the empty folders it recorded as placeholders (paths ending in `/`)."""
    paths = [p.rstrip("/") for p in manifest.values()]
    common = (
        os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0]) if paths else "/"
    )
    items, folders = [], []
    for guid, original in sorted(manifest.items()):
        rel = os.path.relpath(original.rstrip("/"), common).replace(os.sep, "/")
        if original.endswith("/"):
            folders.append(rel)
            continue
        key = prefix + guid
        try:
            obj = backend.stat(key)
        except NotFound:
            items.append(Item(backend.url, key, -1, None, None, rel, original, "missing"))
            continue
        recorded = meta.read(obj.metadata)
        items.append(
            Item(
                backend.url,
                key,
                obj.size,
                recorded.hash if recorded else None,
                recorded.mtime_ns if recorded else None,
                rel,
                original,
                obj.tier,
            )
        )
    return items, folders


# --- planning -------------------------------------------------------------------------------


def _anchor(item: Item, s: RestoreSettings) -> tuple[str, str]:
    """(root, path below it) where the item goes."""
    if not s.in_place:
        assert s.to is not None
        return os.path.abspath(os.path.expanduser(s.to)), item.rel_path
    if not item.original:
        raise UnsafePath(
            f"{item.key}: no original path is recorded in the catalog (only in the "
            "object's metadata, which is not trusted for --in-place); use --to"
        )
    original = os.path.normpath(item.original)
    if not original.startswith("/") or not original.endswith("/" + item.rel_path):
        raise UnsafePath(
            f"{item.key}: recorded path {item.original!r} does not end with {item.rel_path!r}"
        )
    return original[: -len(item.rel_path) - 1] or "/", item.rel_path


def plan_restore(
    items: list[Item],
    folders: list[str],
    s: RestoreSettings,
    catalog: Catalog,
    backends: Callable[[str], Backend],
    now_ns: int,
) -> list[Step]:
    steps: list[Step] = []
    seen: dict[str, str] = {}
    look = Existing()
    for rel in folders:
        root = os.path.abspath(os.path.expanduser(s.to or "/"))
        try:
            check_relative(rel)
            steps.append(Step("folder", None, root, rel, "empty folder recorded in the manifest"))
        except UnsafePath as exc:
            steps.append(Step("fail", None, root, rel, str(exc)))
    for item in items:
        try:
            root, rel = _anchor(item, s)
            check_relative(rel)
        except UnsafePath as exc:
            steps.append(Step("fail", item, s.to or "/", item.rel_path, str(exc)))
            continue
        target = os.path.join(root, rel)
        other = seen.get(fold(target))
        if other is not None:
            steps.append(
                Step(
                    "fail",
                    item,
                    root,
                    rel,
                    f"collides with {other} (two objects for "
                    "one path, or names equal on a case-insensitive or normalising "
                    "filesystem); not restored",
                )
            )
            continue
        seen[fold(target)] = target
        if item.tier == "missing":
            steps.append(Step("fail", item, root, rel, f"{item.key} is not on the remote"))
            continue
        steps.append(_decide(item, root, rel, s, catalog, backends, now_ns, look))
    return steps


def _decide(
    item: Item,
    root: str,
    rel: str,
    s: RestoreSettings,
    catalog: Catalog,
    backends: Callable[[str], Backend],
    now_ns: int,
    look: Existing,
) -> Step:
    target = os.path.join(root, rel)
    try:
        st = look.stat(root, rel)
    except UnsafePath as exc:
        return Step("fail", item, root, rel, str(exc))
    reason = "missing"
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            return Step("fail", item, root, rel, f"{target} is a symlink; not replaced")
        if stat.S_ISDIR(st.st_mode):
            return Step("fail", item, root, rel, f"{target} is a folder; not replaced")
        rec = catalog.restored(target)
        if (
            rec
            and rec["key"] == item.key
            and rec["hash"] == item.hash
            and (rec["size"], rec["mtime_ns"], rec["inode"])
            == (st.st_size, st.st_mtime_ns, st.st_ino)
        ):
            return Step("skip", item, root, rel, "already restored and verified")
        if (
            item.hash
            and (st.st_size, st.st_mtime_ns) == (item.size, item.mtime_ns)
            and hash_file(target, split_hash(item.hash)[0], st.st_size) == item.hash
        ):
            return Step("verified", item, root, rel, "already in place (verified by hash)")
        if s.overwrite == "never":
            return Step("keep", item, root, rel, "exists; kept (--overwrite never)")
        if s.overwrite == "if-changed" and item.hash:
            if hash_file(target, split_hash(item.hash)[0], st.st_size) == item.hash:
                return Step("skip", item, root, rel, "exists with the same content")
            reason = "exists with other content; replaced (--overwrite if-changed)"
        else:
            reason = "exists; replaced (--overwrite always)"
    if not item.hash:
        reason += " (no hoard hash on the object: only its size can be checked)"
    backend = backends(item.store)
    if item.tier not in backend.capabilities.cold_tiers:
        return Step("download", item, root, rel, reason)
    try:
        warm = backend.stat(item.key).warm
    except NotFound:
        return Step("fail", item, root, rel, f"{item.key} is not on the remote")
    thaw = next((t for t in catalog.thaws(item.store) if t["key"] == item.key), None)
    if warm:
        if thaw is not None:
            catalog.thaw_ready(item.store, item.key, now_ns)
        return Step("download", item, root, rel, f"{reason} (thawed from {item.tier})")
    if thaw is not None and thaw["expires_ns"] > now_ns:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(thaw["requested_ns"] / 1e9))
        return Step(
            "pending", item, root, rel, f"thaw ({thaw['speed']}) requested {since}, not ready yet"
        )
    if s.thaw:
        return Step("thaw", item, root, rel, f"in {item.tier}: thaw ({s.thaw}, {s.days} days)")
    return Step(
        "needs-thaw",
        item,
        root,
        rel,
        f"in {item.tier}: run again with --thaw bulk|standard|expedited to request it",
    )


# --- execution ------------------------------------------------------------------------------


def run_restore(
    steps: list[Step],
    s: RestoreSettings,
    catalog: Catalog,
    backends: Callable[[str], Backend],
    reporter: Reporter,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
) -> RestoreResult:
    """Execute the plan: request thaws, download what is readable (waiting for thaws with
    ``--wait``), record everything in the catalog as a job."""
    result = RestoreResult(steps=steps)
    started = clock()
    if s.dry_run:
        result.outcome = "dry-run"
        return result
    result.job_id = job = catalog.start_job("restore", asdict(s), started)
    try:
        for step in steps:
            if step.kind == "folder":
                make_folder(step.root, step.rel)
            elif step.kind == "fail":
                result.failed += 1
                result.errors.append(f"{step.target}: {step.reason}")
                catalog.record_failure(
                    job,
                    step.target,
                    step.item.store if step.item else "",
                    step.item.key if step.item else "",
                    "download",
                    "refused",
                    step.reason,
                    clock(),
                    clock(),
                )
            elif step.kind == "verified" and step.item is not None:
                item, now = step.item, clock()
                catalog.record_restore(
                    job,
                    step.target,
                    item.store,
                    item.key,
                    item.size,
                    item.mtime_ns or 0,
                    os.stat(step.target).st_ino,
                    item.hash,
                    step.reason,
                    now,
                    now,
                )
        pending = [st for st in steps if st.kind == "pending"]
        for step in (st for st in steps if st.kind == "thaw"):
            assert step.item is not None and s.thaw is not None
            try:
                backends(step.item.store).thaw([step.item.key], s.days, s.thaw)
            except HoardError as exc:
                result.failed += 1
                result.errors.append(f"{step.item.key}: thaw failed: {exc}")
                continue
            now = clock()
            catalog.record_thaw(
                step.item.store,
                step.item.key,
                s.thaw,
                s.days,
                now,
                now + s.days * 86_400_000_000_000,
            )
            result.thaw_requested += 1
            pending.append(step)

        # --workers bounds the connections of one large file too: --workers 1 fetches one
        # range at a time, as a user on a thin or metered link asks for.
        ranges = (RANGE_BYTES, max(1, min(RANGE_WORKERS, s.workers)))

        def download(todo: list[Step]) -> None:
            download_all(todo, s.workers, catalog, backends, clock, result, job, ranges)

        download([st for st in steps if st.kind == "download"])
        delay = s.poll_s
        while s.wait and pending and not result.stopped_by:  # a failing store: no waiting
            sleep(delay)
            delay = min(delay * 2, s.max_poll_s)
            ready, still = [], []
            for step in pending:
                assert step.item is not None
                if backends(step.item.store).stat(step.item.key).warm:
                    catalog.thaw_ready(step.item.store, step.item.key, clock())
                    ready.append(
                        Step("download", step.item, step.root, step.rel, "thawed while waiting")
                    )
                else:
                    still.append(step)
            download(ready)
            result.steps.extend(ready)
            pending = still
        result.pending = len(pending)
    except BaseException:
        result.outcome = "interrupted"
        catalog.finish_job(job, clock(), result.outcome, _counts(result))
        raise
    if result.stopped_by:
        result.outcome = "aborted"
    else:
        result.outcome = "failed" if result.failed else "pending" if result.pending else "ok"
    result.elapsed_s = (clock() - started) / 1e9
    catalog.finish_job(job, clock(), result.outcome, _counts(result))
    return result


def _counts(r: RestoreResult) -> dict[str, int]:
    return {
        "scanned": len(r.steps),
        "uploaded": r.restored,
        "skipped": r.skipped + r.count("keep"),
        "failed": r.failed,
        "bytes": r.bytes,
    }


def thaw_status(
    catalog: Catalog, backends: Callable[[str], Backend], now_ns: int
) -> list[dict[str, Any]]:
    """Every thaw the catalog knows, as pending, ready or expired (asking the store)."""
    rows = []
    for t in catalog.thaws():
        state = "pending"
        if t["expires_ns"] <= now_ns:
            state = "expired"
        else:
            try:
                if backends(t["remote"]).stat(t["key"]).warm:
                    state = "ready"
                    catalog.thaw_ready(t["remote"], t["key"], now_ns)
            except NotFound:
                state = "gone"
        rows.append({**t, "state": state})
    return rows
