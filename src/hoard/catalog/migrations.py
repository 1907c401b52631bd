"""Named, ordered schema migrations. Append only: never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    settings TEXT NOT NULL,
    hoard_version TEXT NOT NULL,
    pid INTEGER,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER,
    outcome TEXT NOT NULL DEFAULT 'running',
    scanned INTEGER NOT NULL DEFAULT 0,
    uploaded INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    hash TEXT,
    seen_ns INTEGER NOT NULL
);
CREATE TABLE objects (
    id INTEGER PRIMARY KEY,
    remote TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    hash TEXT,
    etag TEXT,
    tier TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    file_id INTEGER REFERENCES files(id),
    job_id INTEGER REFERENCES jobs(id),
    written_ns INTEGER NOT NULL,
    UNIQUE (remote, key)
);
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    file_id INTEGER REFERENCES files(id),
    path TEXT NOT NULL,
    remote TEXT NOT NULL,
    key TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    hash TEXT,
    etag TEXT,
    tier TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER NOT NULL
);
CREATE INDEX transfers_by_path ON transfers (path);
CREATE INDEX transfers_by_job ON transfers (job_id);
""",
    ),
)

MIGRATIONS += (
    (
        "0002_multipart_uploads",
        """
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY,
    remote TEXT NOT NULL,
    key TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    part_bytes INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    UNIQUE (remote, key)
);
CREATE TABLE upload_parts (
    upload INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (upload, number)
);
""",
    ),
)

MIGRATIONS += (
    (
        "0003_sync_sources",
        """
CREATE TABLE sync_sources (
    remote TEXT NOT NULL,
    prefix TEXT NOT NULL,
    source TEXT NOT NULL,
    dev INTEGER NOT NULL,
    seen_ns INTEGER NOT NULL,
    PRIMARY KEY (remote, prefix, source)
);
""",
    ),
)

MIGRATIONS += (
    (
        "0004_restore",
        """
CREATE TABLE thaws (
    remote TEXT NOT NULL,
    key TEXT NOT NULL,
    speed TEXT NOT NULL,
    days INTEGER NOT NULL,
    requested_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL,
    ready_ns INTEGER,
    PRIMARY KEY (remote, key)
);
CREATE TABLE restores (
    target TEXT PRIMARY KEY,
    remote TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    hash TEXT,
    restored_ns INTEGER NOT NULL
);
CREATE INDEX objects_by_job ON objects (job_id);
""",
    ),
)

MIGRATIONS += (
    (
        "0005_workflow_jobs",
        """
ALTER TABLE jobs ADD COLUMN workflow TEXT;
ALTER TABLE jobs ADD COLUMN error TEXT;
CREATE INDEX jobs_by_workflow ON jobs (workflow, id);
""",
    ),
)

MIGRATIONS += (
    (
        "0006_objects_unchanged_index",
        """
CREATE INDEX objects_unchanged ON objects (remote, key, file_id, hash);
""",
    ),
)
