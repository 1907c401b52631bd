"""The plan's kept actions in the order added: a batch in memory, the rest on disk.

A first push keeps an action for every file it uploads, a dry run one for every file; held in
Python they cost about 0.8 KB each. ``ActionStore`` holds at most one batch: ``spill`` writes
it to a scratch table (plain columns, an adopted object's as JSON) and iterating reads
everything back in order, a batch at a time. Until the first spill nothing touches the disk,
so a small plan's actions are the very objects added.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from hoard.model import Action, ActionKind, RemoteObject
from hoard.scratch import FILE_COLUMNS, FILE_WIDTH, file_from, file_row, insert_all, scratch_db

#: Actions held in memory before they go to disk; rows read back at a time.
BATCH = 1024
READ_ROWS = 256
_KINDS = {k.value: k for k in ActionKind}
_COLUMNS = 7 + FILE_WIDTH


class ActionStore:
    """Append actions, drop one while it is still in memory, iterate them in order."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._buffer: list[Action | None] = []
        self._spilled = 0  # positions below this are on disk (or were dropped)

    def append(self, action: Action) -> int:
        """Keep ``action``; its position, for ``drop``."""
        self._buffer.append(action)
        return self._spilled + len(self._buffer) - 1

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def drop(self, position: int) -> Action:
        """Forget (and return) the action at ``position``, which must not be spilled yet."""
        i = position - self._spilled
        dropped = self._buffer[i]
        assert i >= 0 and dropped is not None, f"no action at {position} in memory"
        self._buffer[i] = None
        return dropped

    def spill(self) -> None:
        """Move the buffered actions to disk (a row at a time: no list of rows)."""
        if self._db is None:
            self._db = scratch_db()
            self._db.execute(
                "CREATE TABLE actions (seq INTEGER PRIMARY KEY, kind TEXT, key TEXT, "
                f"reason TEXT, hash TEXT, hashed INTEGER, adopt TEXT, {FILE_COLUMNS})"
            )
        buffer, start = self._buffer, self._spilled
        insert_all(
            self._db,
            f"INSERT INTO actions VALUES ({','.join('?' * _COLUMNS)})",
            (_row(start + i, a) for i, a in enumerate(buffer) if a is not None),
        )
        self._spilled += len(buffer)
        self._buffer = []

    def __iter__(self) -> Iterator[Action]:
        """Every action kept, in the order added (the spilled ones a batch at a time)."""
        if self._db is not None:
            cur = self._db.execute("SELECT * FROM actions ORDER BY seq")
            while rows := cur.fetchmany(READ_ROWS):
                for r in rows:
                    yield _action(r)
        for a in self._buffer:
            if a is not None:
                yield a

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _row(seq: int, a: Action) -> tuple[object, ...]:
    adopt = None if a.adopt is None else _adopt_json(a.adopt)
    return (seq, a.kind.value, a.key, a.reason, a.hash, a.hashed, adopt, *file_row(a.file))


def _action(r: Any) -> Action:
    adopt = None if r[6] is None else RemoteObject(r[2], *json.loads(r[6]))
    return Action(_KINDS[r[1]], file_from(r, 7), r[2], r[3], r[4], adopt, bool(r[5]))


def _adopt_json(o: RemoteObject) -> str:
    """The adopted object's fields after its key (the action's), as JSON."""
    return json.dumps([o.size, o.etag, o.tier, o.modified_ns, dict(o.metadata), o.warm])
