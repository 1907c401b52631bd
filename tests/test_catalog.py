"""The catalog: named migrations, WAL, atomic records, history by file or folder, and jobs
left behind by a killed process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from hoard.catalog import Catalog, Outcome
from hoard.catalog.migrations import MIGRATIONS
from hoard.model import LocalFile


def _file(path: str, size: int = 3) -> LocalFile:
    return LocalFile(path=path, root="/src", rel_path=path.removeprefix("/src/"), size=size,
                     mtime_ns=5, ctime_ns=5, atime_ns=5, birthtime_ns=None, inode=7, dev=1)


def test_migrations_are_named_applied_once_and_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    cat = Catalog(path)
    assert cat.migrations() == [name for name, _ in MIGRATIONS]
    cat.close()
    again = Catalog(path)  # reopening applies nothing twice
    assert again.migrations() == [name for name, _ in MIGRATIONS]
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_a_reader_is_not_blocked_by_an_open_write(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    writer = Catalog(path)
    job = writer.start_job("push", {"remote": "x"}, 1)
    writer.db.execute("BEGIN IMMEDIATE")
    writer.db.execute("UPDATE jobs SET scanned=99 WHERE id=?", (job,))
    reader = sqlite3.connect(path, timeout=0.5)
    assert reader.execute("SELECT scanned FROM jobs").fetchone() == (0,)
    writer.db.execute("COMMIT")
    assert reader.execute("SELECT scanned FROM jobs").fetchone() == (99,)


def test_record_ok_stores_file_object_and_transfer_together(catalog: Catalog) -> None:
    job = catalog.start_job("push", {"remote": "file:///r"}, 10)
    f = _file("/src/a.txt")
    catalog.record(Outcome(job_id=job, file=f, remote="file:///r", key="k/a.txt",
                           action="upload", reason="new", outcome="ok", started_ns=11,
                           ended_ns=12, hash="blake3:aa", bytes=3, etag="e", tier="standard",
                           metadata={"hoard-hash": "blake3:aa"}))
    rec = catalog.file_record("/src/a.txt")
    assert rec is not None and rec.hash == "blake3:aa" and rec.matches(f)
    obj = catalog.object_record("file:///r", "k/a.txt")
    assert obj is not None and (obj.hash, obj.etag, obj.tier, obj.path) == (
        "blake3:aa", "e", "standard", "/src/a.txt")
    [t] = catalog.history("/src/a.txt")
    assert (t["job_id"], t["key"], t["outcome"], t["bytes"]) == (job, "k/a.txt", "ok", 3)


def test_a_failed_transfer_records_no_object(catalog: Catalog) -> None:
    job = catalog.start_job("push", {}, 1)
    catalog.record(Outcome(job_id=job, file=_file("/src/b"), remote="r", key="b",
                           action="upload", reason="new", outcome="failed", started_ns=1,
                           ended_ns=2, error="503 SlowDown"))
    assert catalog.object_record("r", "b") is None
    assert catalog.history("/src/b")[0]["error"] == "503 SlowDown"


def test_history_of_a_folder_covers_only_that_folder(catalog: Catalog) -> None:
    job = catalog.start_job("push", {}, 1)
    for path in ("/src/2025/a", "/src/2025/sub/b", "/src/2025-old/c", "/src/2026/d"):
        catalog.record(Outcome(job_id=job, file=_file(path), remote="r", key=path,
                               action="upload", reason="new", outcome="ok", started_ns=1,
                               ended_ns=2, hash="h"))
    assert [t["path"] for t in catalog.history("/src/2025")] == ["/src/2025/a", "/src/2025/sub/b"]
    assert [t["path"] for t in catalog.history("/src/2025/")] == ["/src/2025/a", "/src/2025/sub/b"]


def test_job_of_a_killed_process_reads_as_interrupted(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    code = ("import sys; from hoard.catalog import Catalog; "
            f"c = Catalog({path!r}); c.start_job('push', {{}}, 1)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    cat = Catalog(path)
    [job] = cat.jobs()
    assert job["outcome"] == "interrupted"
    running = cat.start_job("push", {}, 2)
    assert cat.job(running)["outcome"] == "running"  # type: ignore[index]


def test_unusable_catalog_path_is_a_clear_error(tmp_path: Path) -> None:
    from hoard.errors import CatalogError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    try:
        Catalog(str(blocker / "catalog.sqlite"))
    except CatalogError as exc:
        assert "catalog.sqlite" in str(exc)
    else:
        raise AssertionError("expected CatalogError")
