"""Which file rendered to which key in this run, on disk: the plan's conflict detection.

A plan must know, for every key, whether a second, different file rendered to it — before
anything moves. Holding every key in Python would cost memory per file (hundreds of MB for a
million files), so the keys go into a private temporary SQLite database (deleted when it is
closed) whose page cache is bounded; only the keys of the current batch are in memory.

The table's primary key is the object key, so a batch goes in with one ``executemany`` and
any key already present (the same file again, or a different one: a conflict) makes that
insert fail; the batch is then rolled back and added row by row, each collision answered
with the path that came first. The check is exact: every key of the run is in the table,
and a key is refused a second time however far apart the two files were scanned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from hoard.scratch import scratch_db

#: Page cache of the temporary database: beyond it SQLite spills to its file. Its journal
#: (kept in memory, to roll a batch back) holds one batch at most.


@dataclass(frozen=True, slots=True)
class Collision:
    """Row ``row`` of a batch: ``key`` was rendered by ``path``; ``first`` rendered it
    before (with ``first_kind``)."""

    row: int
    key: str
    path: str
    kind: str
    first: str
    first_kind: str


class KeyIndex:
    """key → (the first path that rendered it, its action kind), in a temporary database."""

    def __init__(self) -> None:
        self._db = scratch_db()
        self._db.execute(
            "CREATE TABLE keys (key TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL) "
            "WITHOUT ROWID"
        )
        self.size = 0

    def add(self, rows: list[tuple[str, str, str]]) -> Iterator[Collision]:
        """Add (key, path, kind) rows; yield each row whose key was already there."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO keys VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
        else:
            db.execute("COMMIT")
            self.size += len(rows)
            return
        db.execute("BEGIN")
        try:
            for i, (key, path, kind) in enumerate(rows):
                if db.execute(
                    "INSERT OR IGNORE INTO keys VALUES (?, ?, ?)", (key, path, kind)
                ).rowcount:
                    self.size += 1
                    continue
                first, first_kind = db.execute(
                    "SELECT path, kind FROM keys WHERE key=?", (key,)
                ).fetchone()
                yield Collision(i, key, path, kind, first, first_kind)
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
