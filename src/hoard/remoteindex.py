"""What the remote holds under a push's prefix, for the files the catalog knows nothing of.

A first push to a remote that already holds objects (a lost catalog, another machine's
archive) asks, for each new file, whether its key is there and with which hash. The prefix is
listed once, on the first question, into a scratch table keyed by key (a listing of millions
of objects held in a dict would cost memory per object); each question is then one lookup.
"""

from __future__ import annotations

import json
import sqlite3

from hoard import metadata as meta
from hoard.backends.base import Backend
from hoard.errors import NotFound
from hoard.model import RemoteObject
from hoard.plan import Known
from hoard.scratch import insert_all, scratch_db

BATCH = 1024


class RemoteIndex:
    """The remote's objects under ``prefix``, listed once and only when needed."""

    def __init__(self, backend: Backend, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._db: sqlite3.Connection | None = None
        self._listed = -1  # objects listed; -1: not listed yet

    def known(self, key: str) -> Known | None:
        """The object at ``key`` as a ``Known`` (with the hash its metadata records), or None."""
        listed = self._listed_object(key)
        if listed is None:
            return None
        obj = listed if self.backend.capabilities.listing_has_metadata else self._stat(key)
        if obj is None:
            return None
        recorded = meta.read(obj.metadata)
        return Known(obj.size, recorded.hash if recorded else None, "remote", obj)

    def _listed_object(self, key: str) -> RemoteObject | None:
        if self._listed < 0:
            self._list()
        if not self._listed:
            return None
        assert self._db is not None
        row = self._db.execute(
            "SELECT size, etag, tier, modified_ns, metadata, warm FROM objects WHERE key=?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        size, etag, tier, modified_ns, metadata, warm = row
        return RemoteObject(key, size, etag, tier, modified_ns, json.loads(metadata), bool(warm))

    def _list(self) -> None:
        self._db = scratch_db()
        self._db.execute(
            "CREATE TABLE objects (key TEXT PRIMARY KEY, size INTEGER, etag TEXT, tier TEXT, "
            "modified_ns INTEGER, metadata TEXT, warm INTEGER) WITHOUT ROWID"
        )
        insert = "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)"
        rows: list[tuple[object, ...]] = []
        for o in self.backend.list(self.prefix):
            rows.append(
                (o.key, o.size, o.etag, o.tier, o.modified_ns, json.dumps(dict(o.metadata)), o.warm)
            )
            if len(rows) >= BATCH:
                insert_all(self._db, insert, rows)
                rows = []
        insert_all(self._db, insert, rows)
        self._listed = self._db.execute("SELECT count(*) FROM objects").fetchone()[0]

    def _stat(self, key: str) -> RemoteObject | None:
        try:
            return self.backend.stat(key)
        except NotFound:
            return None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
