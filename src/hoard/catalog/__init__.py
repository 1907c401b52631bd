"""The local SQLite catalog: every job, file, object and transfer. The only module speaking SQL.

One connection behind one lock: the coordinating thread records results, and upload workers
journal multipart progress through the same writer as each part completes. WAL mode, so
readers (`hoard jobs` in another terminal) never block a run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hoard import __version__
from hoard.backends.base import PartRecord, UploadState
from hoard.catalog.migrations import MIGRATIONS
from hoard.errors import CatalogError
from hoard.model import LocalFile

RestoreRow = tuple[str, str, str, int, int, int, str | None, str, int, int]
"""target, remote, key, size, mtime_ns, inode, hash, reason, started_ns, ended_ns"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    inode: int
    hash: str | None

    def matches(self, f: LocalFile) -> bool:
        """Same size, mtime_ns and inode: the content is taken as unchanged, not read again."""
        return (self.size, self.mtime_ns, self.inode) == (f.size, f.mtime_ns, f.inode)


@dataclass(frozen=True)
class ObjectRecord:
    remote: str
    key: str
    size: int
    hash: str | None
    etag: str
    tier: str
    path: str | None


@dataclass(frozen=True)
class StoredObject:
    """An object as the catalog recorded it, with the metadata it was written with."""

    remote: str
    key: str
    size: int
    hash: str | None
    etag: str
    tier: str
    metadata: dict[str, str]
    path: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredObject:
        return cls(
            row[0],
            row[1],
            int(row[2]),
            row[3],
            row[4] or "",
            row[5] or "standard",
            json.loads(row[6] or "{}"),
            row[7],
        )


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned transfer, handed to ``Catalog.record``."""

    job_id: int
    file: LocalFile
    remote: str
    key: str
    action: str
    reason: str
    outcome: str
    started_ns: int
    ended_ns: int
    hash: str = ""
    bytes: int = 0
    etag: str = ""
    tier: str = ""
    metadata: Mapping[str, str] | None = None
    error: str = ""


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Catalog:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            if path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._lock = threading.RLock()
            self.db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise CatalogError(f"catalog {path}: {exc}") from None

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, "
            "applied_ns INTEGER NOT NULL)"
        )
        done = {r[0] for r in self.db.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self._tx() as db:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO migrations VALUES (?, strftime('%s','now') * 1000000000)", (name,)
                )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised with every other use of the connection."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.db.execute(sql, args).fetchone()
            return row

    def migrations(self) -> list[str]:
        return [r[0] for r in self._all("SELECT name FROM migrations ORDER BY name")]

    def close(self) -> None:
        self.db.close()

    # --- jobs -------------------------------------------------------------------------------
    def start_job(
        self,
        command: str,
        settings: Mapping[str, Any],
        started_ns: int,
        workflow: str | None = None,
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO jobs (command, settings, hoard_version, pid, started_ns, workflow) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    command,
                    json.dumps(settings, sort_keys=True),
                    __version__,
                    os.getpid(),
                    started_ns,
                    workflow,
                ),
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish_job(
        self, job_id: int, ended_ns: int, outcome: str, counts: Mapping[str, int]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET ended_ns=?, outcome=?, scanned=?, uploaded=?, skipped=?, "
                "failed=?, bytes=? WHERE id=?",
                (
                    ended_ns,
                    outcome,
                    counts.get("scanned", 0),
                    counts.get("uploaded", 0),
                    counts.get("skipped", 0),
                    counts.get("failed", 0),
                    counts.get("bytes", 0),
                    job_id,
                ),
            )

    def end_job(self, job_id: int, ended_ns: int, outcome: str, error: str) -> None:
        """Record why a job ended early (an error before or around its transfers). A job
        whose run already recorded its own end keeps that outcome; the error is added."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET error=?, ended_ns=COALESCE(ended_ns, ?), outcome=CASE outcome "
                "WHEN 'running' THEN ? ELSE outcome END WHERE id=?",
                (error, ended_ns, outcome, job_id),
            )

    def last_workflow_jobs(self) -> dict[str, dict[str, Any]]:
        """The latest job of each workflow, by workflow name."""
        rows = self._all(
            "SELECT * FROM jobs WHERE id IN "
            "(SELECT MAX(id) FROM jobs WHERE workflow IS NOT NULL GROUP BY workflow)"
        )
        return {r["workflow"]: self._job_dict(r) for r in rows}

    def last_started(self, workflow: str) -> int | None:
        """When the latest job of ``workflow`` started (ns), or None if it never ran."""
        row = self._one("SELECT MAX(started_ns) FROM jobs WHERE workflow=?", (workflow,))
        return None if row is None or row[0] is None else int(row[0])

    def running_job(self, pid: int) -> dict[str, Any] | None:
        """The job process ``pid`` is running, if it recorded one."""
        row = self._one(
            "SELECT * FROM jobs WHERE pid=? AND outcome='running' ORDER BY id DESC LIMIT 1",
            (pid,),
        )
        return None if row is None else self._job_dict(row)

    def interrupt_orphans(self, ended_ns: int) -> list[int]:
        """Mark jobs still 'running' whose process is gone as interrupted (call it while
        holding the catalog lock, when no other writer can be running)."""
        rows = self._all("SELECT id, pid FROM jobs WHERE outcome='running'")
        orphans = [int(r["id"]) for r in rows if not _pid_alive(r["pid"])]
        if orphans:
            with self._tx() as db:
                db.executemany(
                    "UPDATE jobs SET outcome='interrupted', ended_ns=?, error=COALESCE(error, ?) "
                    "WHERE id=? AND outcome='running'",
                    [(ended_ns, "the process ended without recording the end", i) for i in orphans],
                )
        return orphans

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [self._job_dict(r) for r in rows]

    def job(self, job_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM jobs WHERE id=?", (job_id,))
        if row is None:
            return None
        job = self._job_dict(row)
        job["transfers"] = [
            dict(r)
            for r in self._all("SELECT * FROM transfers WHERE job_id=? ORDER BY id", (job_id,))
        ]
        return job

    @staticmethod
    def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
        job = dict(row)
        job["settings"] = json.loads(job["settings"])
        if job["outcome"] == "running" and not _pid_alive(job["pid"]):
            job["outcome"] = "interrupted"
        return job

    # --- files and objects ------------------------------------------------------------------
    def file_record(self, path: str) -> FileRecord | None:
        row = self._one("SELECT path, size, mtime_ns, inode, hash FROM files WHERE path=?", (path,))
        return FileRecord(*row) if row else None

    def file_records(self, paths: list[str]) -> dict[str, FileRecord]:
        """``file_record`` for many paths in one query (the no-change rerun's hot path)."""
        rows = (
            self._all(
                f"SELECT path, size, mtime_ns, inode, hash FROM files WHERE path IN "
                f"({','.join('?' * len(paths))})",
                tuple(paths),
            )
            if paths
            else []
        )
        return {r[0]: FileRecord(*r) for r in rows}

    def file_hashes(self, paths: list[str]) -> dict[str, tuple[str, int, int, int, str | None]]:
        """path → (path, size, mtime_ns, inode, hash) for many paths, as plain tuples (the
        no-change rerun's hot path; ``FileRecord.matches`` compares size, mtime and inode)."""
        return self._rows_by_first(
            "SELECT path, size, mtime_ns, inode, hash FROM files WHERE ", "path", (), paths
        )

    def object_hashes(self, remote: str, keys: list[str]) -> dict[str, tuple[str, int, str | None]]:
        """key → (key, size, hash) of many objects of one remote, as plain tuples."""
        return self._rows_by_first(
            "SELECT key, size, hash FROM objects WHERE remote=? AND ", "key", (remote,), keys
        )

    def objects_with_files(self, remote: str, keys: list[str]) -> dict[str, tuple[Any, ...]]:
        """key → (key, size, hash, path, file size, mtime_ns, inode, file hash): many objects
        of one remote each with the file it was made from, as plain tuples."""
        return self._rows_by_first(
            "SELECT o.key, o.size, o.hash, f.path, f.size, f.mtime_ns, f.inode, f.hash "
            "FROM objects o JOIN files f ON f.id = o.file_id WHERE o.remote=? AND ",
            "o.key",
            (remote,),
            keys,
        )

    def unchanged_sources(
        self, remote: str, keys: list[str], algorithm: str
    ) -> dict[str, tuple[str, str, int, int, int, int]]:
        """key → (key, path, size, mtime_ns, inode, same) for the objects of ``keys``: the
        file each was made from as recorded, and whether the object's hash is that file's
        recorded hash, of ``algorithm`` (1 or 0). The no-change rerun's hot path:
        ``objects_with_files`` narrowed to what it compares, hashes compared in SQL, the
        objects' side read from the index ``objects_unchanged`` alone (about 0.13 KB per
        object on disk; it saves reading each object's row, metadata and all)."""
        return self._rows_by_first(
            "SELECT o.key, f.path, f.size, f.mtime_ns, f.inode, "
            "o.hash = f.hash AND (f.hash = ? OR f.hash > ? AND f.hash < ?) "
            "FROM objects o JOIN files f ON f.id = o.file_id WHERE o.remote=? AND ",
            "o.key",
            (algorithm, algorithm + ":", algorithm + ";", remote),  # ';' comes after ':'
            keys,
        )

    def _rows_by_first(
        self, select: str, column: str, args: tuple[object, ...], values: list[str]
    ) -> dict[str, Any]:
        """Rows whose ``column`` is one of ``values``, by that column (selected first).

        A scan's batch is sorted, so one range of the index usually holds it: read that
        range, unless it holds many other rows too; then look the values up one by one."""
        if not values:
            return {}
        limit = 2 * len(values) + 64
        with self._lock:
            cur = self.db.cursor()
            cur.row_factory = None
            cur.execute(
                f"{select}{column} >= ? AND {column} <= ? LIMIT ?",
                (*args, min(values), max(values), limit + 1),
            )
            rows = cur.fetchall()
            if len(rows) > limit:
                cur.execute(
                    f"{select}{column} IN ({','.join('?' * len(values))})", (*args, *values)
                )
                rows = cur.fetchall()
        return {r[0]: r for r in rows}

    def object_records(self, remote: str, keys: list[str]) -> dict[str, ObjectRecord]:
        """``object_record`` for many keys of one remote in one query."""
        if not keys:
            return {}
        rows = self._all(
            "SELECT o.remote, o.key, o.size, o.hash, o.etag, o.tier, f.path FROM objects o "
            "LEFT JOIN files f ON f.id = o.file_id WHERE o.remote=? AND o.key IN "
            f"({','.join('?' * len(keys))})",
            (remote, *keys),
        )
        return {r[1]: ObjectRecord(*r) for r in rows}

    def object_record(self, remote: str, key: str) -> ObjectRecord | None:
        row = self._one(
            "SELECT o.remote, o.key, o.size, o.hash, o.etag, o.tier, f.path FROM objects o "
            "LEFT JOIN files f ON f.id = o.file_id WHERE o.remote=? AND o.key=?",
            (remote, key),
        )
        return ObjectRecord(*row) if row else None

    def remember_hash(self, f: LocalFile, hash_: str, seen_ns: int) -> int:
        """Record the file's identity and content hash; returns its id."""
        with self._tx() as db:
            return self._remember_hash(db, f, hash_, seen_ns)

    @staticmethod
    def _remember_hash(db: sqlite3.Connection, f: LocalFile, hash_: str, seen_ns: int) -> int:
        row = db.execute(
            "INSERT INTO files (path, size, mtime_ns, inode, hash, seen_ns) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "inode=excluded.inode, hash=excluded.hash, seen_ns=excluded.seen_ns RETURNING id",
            (f.path, f.size, f.mtime_ns, f.inode, hash_, seen_ns),
        ).fetchone()
        return int(row[0])

    def adopt_object(
        self,
        job_id: int,
        remote: str,
        key: str,
        f: LocalFile,
        hash_: str,
        size: int,
        etag: str,
        tier: str,
        metadata: Mapping[str, str],
        seen_ns: int,
    ) -> None:
        """Record an object found on the remote with our hash (e.g. a catalog on a new machine)."""
        with self._tx() as db:
            file_id = self._remember_hash(db, f, hash_, seen_ns)
            self._upsert_object(
                db, remote, key, size, hash_, etag, tier, metadata, file_id, job_id, seen_ns
            )

    @staticmethod
    def _upsert_object(
        db: sqlite3.Connection,
        remote: str,
        key: str,
        size: int,
        hash_: str,
        etag: str,
        tier: str,
        metadata: Mapping[str, str],
        file_id: int,
        job_id: int | None,
        written_ns: int,
    ) -> None:
        db.execute(
            "INSERT INTO objects (remote, key, size, hash, etag, tier, metadata, file_id, job_id, "
            "written_ns) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (remote, key) DO UPDATE SET "
            "size=excluded.size, hash=excluded.hash, etag=excluded.etag, tier=excluded.tier, "
            "metadata=excluded.metadata, file_id=excluded.file_id, job_id=excluded.job_id, "
            "written_ns=excluded.written_ns",
            (
                remote,
                key,
                size,
                hash_,
                etag,
                tier,
                json.dumps(dict(metadata)),
                file_id,
                job_id,
                written_ns,
            ),
        )

    def record(self, o: Outcome) -> None:
        """Record one transfer, and on success the file's hash and the object, atomically."""
        self.record_many([o])

    def record_many(self, outcomes: list[Outcome]) -> None:
        """``record`` for many transfers in one transaction: all of them or none. In order: a
        transfer's file is the one of its path after the whole batch (the same row id; a file
        first seen in this batch is linked even from a transfer before its success)."""
        if not outcomes:
            return
        ok = [o for o in outcomes if o.outcome == "ok"]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO files (path, size, mtime_ns, inode, hash, seen_ns) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (path) DO UPDATE SET size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, inode=excluded.inode, hash=excluded.hash, "
                "seen_ns=excluded.seen_ns",
                [
                    (o.file.path, o.file.size, o.file.mtime_ns, o.file.inode, o.hash, o.ended_ns)
                    for o in ok
                ],
            )
            db.executemany(
                "INSERT INTO objects (remote, key, size, hash, etag, tier, metadata, file_id, "
                "job_id, written_ns) VALUES (?,?,?,?,?,?,?,(SELECT id FROM files WHERE path=?),"
                "?,?) ON CONFLICT (remote, key) DO UPDATE SET size=excluded.size, "
                "hash=excluded.hash, etag=excluded.etag, tier=excluded.tier, "
                "metadata=excluded.metadata, file_id=excluded.file_id, job_id=excluded.job_id, "
                "written_ns=excluded.written_ns",
                [
                    (
                        o.remote,
                        o.key,
                        o.bytes,
                        o.hash,
                        o.etag,
                        o.tier,
                        json.dumps(dict(o.metadata or {})),
                        o.file.path,
                        o.job_id,
                        o.ended_ns,
                    )
                    for o in ok
                ],
            )
            db.executemany(
                "INSERT INTO transfers (job_id, file_id, path, remote, key, action, reason, "
                "bytes, hash, etag, tier, outcome, error, started_ns, ended_ns) "
                "VALUES (?,(SELECT id FROM files WHERE path=?),?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        o.job_id,
                        o.file.path,
                        o.file.path,
                        o.remote,
                        o.key,
                        o.action,
                        o.reason,
                        o.bytes,
                        o.hash or None,
                        o.etag or None,
                        o.tier or None,
                        o.outcome,
                        o.error or None,
                        o.started_ns,
                        o.ended_ns,
                    )
                    for o in outcomes
                ],
            )

    def history(self, path: str) -> list[dict[str, Any]]:
        """Every transfer of the file at ``path``, or of every file under the folder ``path``."""
        folder = path.rstrip("/") + "/"
        rows = self._all(
            "SELECT t.*, j.command FROM transfers t JOIN jobs j ON j.id = t.job_id "
            "WHERE t.path = ? OR (t.path >= ? AND t.path < ?) ORDER BY t.path, t.id",
            (path, folder, folder[:-1] + "0"),
        )
        return [dict(r) for r in rows]

    def record_delete(
        self,
        job_id: int,
        remote: str,
        key: str,
        path: str,
        reason: str,
        outcome: str,
        size: int,
        started_ns: int,
        ended_ns: int,
        error: str = "",
    ) -> None:
        """Record a delete (or a delete that was refused) as a transfer of the job; a done
        delete also drops the object from the catalog."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
            db.execute(
                "INSERT INTO transfers (job_id, file_id, path, remote, key, action, reason, "
                "bytes, outcome, error, started_ns, ended_ns) "
                "VALUES (?,?,?,?,?,'delete',?,?,?,?,?,?)",
                (
                    job_id,
                    row[0] if row else None,
                    path,
                    remote,
                    key,
                    reason,
                    size,
                    outcome,
                    error or None,
                    started_ns,
                    ended_ns,
                ),
            )
            if outcome == "ok":
                db.execute("DELETE FROM objects WHERE remote=? AND key=?", (remote, key))

    def source_device(self, remote: str, prefix: str, source: str) -> int | None:
        """The device id the source root had at the last completed sync to this prefix."""
        row = self._one(
            "SELECT dev FROM sync_sources WHERE remote=? AND prefix=? AND source=?",
            (remote, prefix, source),
        )
        return int(row[0]) if row else None

    def remember_source_device(
        self, remote: str, prefix: str, source: str, dev: int, seen_ns: int
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO sync_sources VALUES (?,?,?,?,?)",
                (remote, prefix, source, dev, seen_ns),
            )

    # --- restore ----------------------------------------------------------------------------
    _OBJECT_COLUMNS = (
        "SELECT o.remote, o.key, o.size, o.hash, o.etag, o.tier, o.metadata, "
        "f.path FROM objects o LEFT JOIN files f ON f.id = o.file_id "
    )

    def objects_under(self, remote: str, prefix: str) -> list[StoredObject]:
        """Objects the catalog knows under ``prefix`` of ``remote``, sorted by key."""
        rows = self._all(
            self._OBJECT_COLUMNS + "WHERE o.remote=? AND o.key >= ? AND o.key < ? ORDER BY o.key",
            (remote, prefix, prefix + "\U0010ffff"),
        )
        return [StoredObject.from_row(r) for r in rows]

    def objects_for_path(self, path: str) -> list[StoredObject]:
        """Objects archived from the file ``path`` or from files under the folder ``path``."""
        folder = path.rstrip("/") + "/"
        rows = self._all(
            self._OBJECT_COLUMNS + "WHERE f.path = ? OR (f.path >= ? AND f.path < ?) "
            "ORDER BY o.remote, o.key",
            (path, folder, folder[:-1] + "0"),
        )
        return [StoredObject.from_row(r) for r in rows]

    def objects_of_job(self, job_id: int) -> list[StoredObject]:
        """The objects a job uploaded (as they stand now)."""
        rows = self._all(
            self._OBJECT_COLUMNS + "JOIN transfers t ON t.remote = o.remote AND "
            "t.key = o.key WHERE t.job_id = ? AND t.outcome = 'ok' AND "
            "t.action = 'upload' GROUP BY o.id ORDER BY o.remote, o.key",
            (job_id,),
        )
        return [StoredObject.from_row(r) for r in rows]

    def object_details(self, remote: str, key: str) -> StoredObject | None:
        row = self._one(self._OBJECT_COLUMNS + "WHERE o.remote=? AND o.key=?", (remote, key))
        return StoredObject.from_row(row) if row else None

    def record_thaw(
        self, remote: str, key: str, speed: str, days: int, requested_ns: int, expires_ns: int
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO thaws VALUES (?,?,?,?,?,?,NULL)",
                (remote, key, speed, days, requested_ns, expires_ns),
            )

    def thaw_ready(self, remote: str, key: str, ready_ns: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE thaws SET ready_ns=? WHERE remote=? AND key=? AND ready_ns IS NULL",
                (ready_ns, remote, key),
            )

    def thaws(self, remote: str | None = None) -> list[dict[str, Any]]:
        if remote is None:
            rows = self._all("SELECT * FROM thaws ORDER BY requested_ns, key")
        else:
            rows = self._all("SELECT * FROM thaws WHERE remote=? ORDER BY key", (remote,))
        return [dict(r) for r in rows]

    def forget_thaw(self, remote: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM thaws WHERE remote=? AND key=?", (remote, key))

    def restored(self, target: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM restores WHERE target=?", (target,))
        return dict(row) if row else None

    def record_restore(
        self,
        job_id: int,
        target: str,
        remote: str,
        key: str,
        size: int,
        mtime_ns: int,
        inode: int,
        hash_: str | None,
        reason: str,
        started_ns: int,
        ended_ns: int,
    ) -> None:
        self.record_restores(
            job_id,
            [(target, remote, key, size, mtime_ns, inode, hash_, reason, started_ns, ended_ns)],
        )

    def record_restores(self, job_id: int, rows: list[RestoreRow]) -> None:
        """Several restored files in one transaction; a row holds record_restore's arguments
        after ``job_id``, in order."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO restores VALUES (?,?,?,?,?,?,?,?)",
                [(t, r, k, size, m, i, h, end) for t, r, k, size, m, i, h, _, _, end in rows],
            )
            db.executemany(
                "INSERT INTO transfers (job_id, path, remote, key, action, reason, bytes, hash, "
                "outcome, started_ns, ended_ns) VALUES (?,?,?,?,'download',?,?,?,'ok',?,?)",
                [
                    (job_id, t, r, k, why, size, h, start, end)
                    for t, r, k, size, _, _, h, why, start, end in rows
                ],
            )

    def record_failure(
        self,
        job_id: int,
        path: str,
        remote: str,
        key: str,
        action: str,
        reason: str,
        error: str,
        started_ns: int,
        ended_ns: int,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO transfers (job_id, path, remote, key, action, reason, outcome, "
                "error, started_ns, ended_ns) VALUES (?,?,?,?,?,?,'failed',?,?,?)",
                (job_id, path, remote, key, action, reason, error, started_ns, ended_ns),
            )

    def import_object(
        self,
        remote: str,
        key: str,
        size: int,
        hash_: str,
        etag: str,
        tier: str,
        metadata: Mapping[str, str],
        path: str,
        mtime_ns: int,
        seen_ns: int,
    ) -> None:
        """Record an object (and the file it came from) read back from the remote's metadata,
        as `hoard catalog rebuild` does. The inode is unknown (0), so the next push re-hashes
        the file once before trusting it."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO files (path, size, mtime_ns, inode, hash, seen_ns) "
                "VALUES (?,?,?,0,?,?) ON CONFLICT (path) DO UPDATE SET seen_ns=excluded.seen_ns "
                "RETURNING id",
                (path, size, mtime_ns, hash_, seen_ns),
            ).fetchone()
            self._upsert_object(
                db, remote, key, size, hash_, etag, tier, metadata, int(row[0]), None, seen_ns
            )

    # --- multipart uploads ------------------------------------------------------------------
    def journal(
        self,
        remote: str,
        key: str,
        f: LocalFile,
        on_part: Callable[[int], None] | None = None,
        on_resume: Callable[[int], None] | None = None,
    ) -> UploadJournal:
        return UploadJournal(self, remote, key, f, on_part, on_resume)

    def tracked_uploads(self, remote: str) -> dict[str, str]:
        """upload id → key of every unfinished upload the catalog can still resume."""
        rows = self._all("SELECT upload_id, key FROM uploads WHERE remote=?", (remote,))
        return {r[0]: r[1] for r in rows}

    def forget_upload(self, remote: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE remote=? AND key=?", (remote, key))


class UploadJournal:
    """The catalog's side of ``hoard.backends.base.Journal`` for one file and key."""

    def __init__(
        self,
        catalog: Catalog,
        remote: str,
        key: str,
        f: LocalFile,
        on_part: Callable[[int], None] | None,
        on_resume: Callable[[int], None] | None,
    ) -> None:
        self.catalog, self.remote, self.key, self.file = catalog, remote, key, f
        self._on_part, self._on_resume = on_part, on_resume
        self._id: int | None = None

    def previous(self) -> UploadState | None:
        c = self.catalog
        row = c._one(
            "SELECT id, upload_id, part_bytes, path, size, mtime_ns, inode FROM uploads "
            "WHERE remote=? AND key=?",
            (self.remote, self.key),
        )
        if row is None:
            return None
        self._id = int(row[0])
        f = self.file
        same = (row[3], row[4], row[5], row[6]) == (f.path, f.size, f.mtime_ns, f.inode)
        parts = {
            r[0]: PartRecord(r[0], r[1], r[2], r[3])
            for r in c._all(
                "SELECT number, size, etag, checksum FROM upload_parts WHERE upload=?", (row[0],)
            )
        }
        return UploadState(row[1], int(row[2]), same, parts)

    def started(self, upload_id: str, part_bytes: int) -> None:
        f = self.file
        with self.catalog._tx() as db:
            db.execute("DELETE FROM uploads WHERE remote=? AND key=?", (self.remote, self.key))
            cur = db.execute(
                "INSERT INTO uploads (remote, key, upload_id, part_bytes, path, size, mtime_ns, "
                "inode, started_ns) VALUES (?,?,?,?,?,?,?,?,strftime('%s','now') * 1000000000)",
                (self.remote, self.key, upload_id, part_bytes, f.path, f.size, f.mtime_ns, f.inode),
            )
            self._id = cur.lastrowid

    def part_done(self, part: PartRecord) -> None:
        with self.catalog._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO upload_parts VALUES (?,?,?,?,?)",
                (self._id, part.number, part.size, part.etag, part.checksum),
            )
        if self._on_part is not None:
            self._on_part(part.size)

    def resumed(self, resumed_bytes: int) -> None:
        if self._on_resume is not None:
            self._on_resume(resumed_bytes)

    def finished(self) -> None:
        self.catalog.forget_upload(self.remote, self.key)
        self._id = None
