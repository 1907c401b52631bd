"""Files sorted by key on disk: what `sync` marches against the remote listing.

The march needs the source side in key order, and keys need not come in scan order (a
template, NFC normalisation), so the examined files go into a private temporary SQLite
database (removed when it is closed) and come back ``ORDER BY key``; SQLite sorts with a
bounded page cache and spills to its file, so memory does not grow with the tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from hoard.scratch import FILE_COLUMNS, FILE_WIDTH, file_from, file_row, insert_all, scratch_db

if TYPE_CHECKING:
    from hoard.push import Examined

BATCH = 1024
_COLUMNS = 4 + FILE_WIDTH


class SortedByKey:
    """Add examined files in any order; read them back by key (ties in the order added)."""

    def __init__(self) -> None:
        self._db = scratch_db()
        self._db.execute(
            "CREATE TABLE files (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, hash TEXT, "
            f"hashed INTEGER, {FILE_COLUMNS})"
        )

    def add_all(self, examined: Iterable[Examined]) -> None:
        rows: list[tuple[object, ...]] = []
        for e in examined:
            rows.append((None, e.key, e.hash, e.hashed, *file_row(e.file)))
            if len(rows) >= BATCH:
                self._insert(rows)
                rows = []
        self._insert(rows)

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        if rows:
            insert_all(self._db, f"INSERT INTO files VALUES ({','.join('?' * _COLUMNS)})", rows)

    def sorted(self) -> Iterator[tuple[str, Examined]]:
        from hoard.push import Examined

        cur = self._db.execute("SELECT * FROM files ORDER BY key, seq")
        while rows := cur.fetchmany(BATCH):
            for r in rows:
                yield r[1], Examined(file_from(r, 4), r[1], r[2], bool(r[3]))

    def close(self) -> None:
        self._db.close()
