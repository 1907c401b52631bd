"""Frozen data shared by every layer: what was scanned, what is remote, what the plan decided."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One regular file found by the scan, stat'ed exactly once.

    ``rel_path`` is relative to ``root`` (the source's base folder) with `/` separators;
    ``source`` labels the source it came from (the root's absolute path).
    """

    path: str
    root: str
    rel_path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    birthtime_ns: int | None
    inode: int
    dev: int
    base_given: bool = True

    @property
    def source(self) -> str:
        return self.root

    @property
    def created_ns(self) -> int:
        """Birth time where the filesystem reports one, else the earlier of ctime and mtime."""
        if self.birthtime_ns is not None:
            return self.birthtime_ns
        return min(self.ctime_ns, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """An object as a backend reports it. ``metadata`` is empty when the listing omits it."""

    key: str
    size: int
    etag: str = ""
    tier: str = "standard"
    modified_ns: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    warm: bool = True


class ActionKind(enum.StrEnum):
    UPLOAD = "upload"
    SKIP = "skip"
    CONFLICT = "conflict"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Action:
    """One decision of the plan with its human reason (`new`, `changed: size 10 → 12`)."""

    kind: ActionKind
    file: LocalFile
    key: str
    reason: str
    hash: str = ""
    adopt: RemoteObject | None = None
    #: the content was read (hashed) this run, so the catalog's file record needs the new stat
    hashed: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    """An object under the mirrored prefix with no source file: removed by `sync --delete`.
    ``path`` is the file it came from, where the catalog knows it."""

    key: str
    reason: str
    remote: RemoteObject
    path: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem with one path that did not stop the run (a warning, or a failed file)."""

    path: str
    message: str
    #: True when data was left out (an unreadable file or folder), not just noted
    fails: bool = False
