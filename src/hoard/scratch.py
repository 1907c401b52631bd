"""Scratch databases: a private, temporary on-disk SQLite file (removed when closed) with a
bounded page cache, for what must not be held in memory per file (the plan's key index, the
source side of a sync sorted by key). Nothing in one needs to survive a crash."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

CACHE_KIB = 8192


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
