"""Scratch databases: a private, temporary on-disk SQLite file (removed when closed) with a
bounded page cache, for what must not be held in memory per file (the plan's key index, the
source side of a sync sorted by key). Nothing in one needs to survive a crash."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from hoard.model import LocalFile

CACHE_KIB = 8192

#: A LocalFile's columns in a scratch table, in ``file_row``'s order.
FILE_COLUMNS = (
    "path TEXT, root TEXT, rel_path TEXT, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, "
    "atime_ns INTEGER, birthtime_ns INTEGER, inode INTEGER, dev INTEGER, base_given INTEGER"
)
FILE_WIDTH = 11


def scratch_db() -> sqlite3.Connection:
    db = sqlite3.connect("", isolation_level=None, check_same_thread=False)  # "": temporary
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.execute("PRAGMA journal_mode=MEMORY")  # a batch can still be rolled back
    db.execute("PRAGMA synchronous=OFF")
    return db


def insert_all(db: sqlite3.Connection, sql: str, rows: Iterable[Sequence[object]]) -> None:
    """``executemany`` in one transaction: without one, each row commits on its own."""
    db.execute("BEGIN")
    try:
        db.executemany(sql, rows)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def file_row(f: LocalFile) -> tuple[object, ...]:
    """``f`` as the FILE_COLUMNS of a row."""
    return (
        f.path,
        f.root,
        f.rel_path,
        f.size,
        f.mtime_ns,
        f.ctime_ns,
        f.atime_ns,
        f.birthtime_ns,
        f.inode,
        f.dev,
        f.base_given,
    )


def file_from(row: Sequence[Any], at: int) -> LocalFile:
    """The LocalFile whose FILE_COLUMNS start at ``row[at]``."""
    r = row[at : at + FILE_WIDTH]
    return LocalFile(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]))
