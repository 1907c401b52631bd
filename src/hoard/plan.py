"""Planning: what to do with each file, and why.

``decide`` (pure) compares a file (and its content hash) with what is known of its destination
key; ``Plan`` collects the decisions, detects two files rendering to one key (in a temporary
on-disk ``KeyIndex``), keeps them (beyond a batch, on disk: an ``ActionStore``) and totals
them. `--dry-run` prints every decision of a Plan; a real run makes the same decisions and
keeps only the ones it acts on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from hoard.actionstore import BATCH as ACTION_BATCH
from hoard.actionstore import ActionStore
from hoard.keyindex import KeyIndex
from hoard.model import Action, ActionKind, Delete, LocalFile, Problem, RemoteObject


@dataclass(frozen=True)
class Known:
    """What is known about the destination key: from the catalog, or from the remote object."""

    size: int
    hash: str | None
    source: str  # "catalog" or "remote"
    remote: RemoteObject | None = None


def decide(
    f: LocalFile, key: str, content_hash: str, known: Known | None, hashed: bool = True
) -> Action:
    """The action for one file and its reason; ``hashed`` says its content was read this run."""
    kind, reason = ActionKind.UPLOAD, "changed: content"
    if known is None:
        reason = "new"
    elif known.hash == content_hash:
        kind = ActionKind.SKIP
        if known.source == "remote":
            return Action(
                kind,
                f,
                key,
                "unchanged (matches the remote object's hash)",
                content_hash,
                adopt=known.remote,
                hashed=hashed,
            )
        reason = "unchanged"
    elif known.hash is None:
        reason = "changed: remote object has no hoard hash"
    elif known.size != f.size:
        reason = f"changed: size {known.size} → {f.size}"
    return Action(kind, f, key, reason, content_hash, hashed=hashed)


#: Keys are checked for conflicts this many at a time.
INDEX_BATCH = 1024


class Plan:
    """The decisions, with conflicts marked and problems kept for the report.

    Every decision is counted and its key checked against every other key of the run (in a
    ``KeyIndex`` on disk, a batch at a time). ``kept()`` streams, in scan order, what the run
    acts on: uploads, failures, conflicts, and the skips that teach the catalog something
    (adopted from the remote, or hashed this run); they wait in an ``ActionStore`` (memory
    for a batch, then disk), so a first push of millions of files holds a batch of them. A
    skip the catalog already vouches for is only counted — unless ``keep_skips`` (a dry run,
    which prints every decision). ``skip_unchanged`` counts such a skip without making an
    Action at all, and ``handed_on`` an upload already on its way (a push that uploads as it
    plans). A conflict found after its actions were kept is marked as they are read.
    """

    def __init__(self, keep_skips: bool = True) -> None:
        self.keep_skips = keep_skips
        self.deletes: list[Delete] = []
        self.problems: list[Problem] = []
        self._kept = ActionStore()
        self._counts: Counter[str] = Counter()
        self._upload_bytes = 0
        self._fail_paths: set[str] = set()  # of FAIL actions: as many as files that failed
        self._index: KeyIndex | None = None
        #: (key, path, kind) not yet in the index, and each one's position in _kept (or -1)
        self._pending: list[tuple[str, str, str]] = []
        self._pending_at: list[int] = []
        #: key → the paths that render to it, first first (only keys with a conflict)
        self._conflicts: dict[str, list[str]] = {}

    def add(self, action: Action) -> None:
        """Add a decision; a second, different file with the same key makes both conflicts
        (the same file again, reached through overlapping sources, is dropped)."""
        if action.kind is ActionKind.FAIL:
            self._kept.append(action)
            self._counts[ActionKind.FAIL.value] += 1
            self._fail_paths.add(action.file.path)
        else:
            keep = (
                self.keep_skips
                or action.kind is not ActionKind.SKIP
                or action.adopt is not None
                or action.hashed
            )
            if action.kind is ActionKind.UPLOAD:
                self._upload_bytes += action.file.size
            position = self._kept.append(action) if keep else -1
            self._note(action.key, action.file.path, action.kind.value, position)
        if self._kept.buffered >= ACTION_BATCH:
            self._flush()  # a drop it finds is still in memory
            self._kept.spill()

    def handed_on(self, action: Action) -> None:
        """Count an upload the caller has handed on already, knowing that no other file of
        the run renders to its key (see ``push.streams``): not kept, not checked."""
        self._counts["upload"] += 1
        self._upload_bytes += action.file.size

    def skip_unchanged(self, key: str, path: str, unique: bool = False) -> None:
        """Count a skip the catalog vouches for (not hashed, not adopted), kept by nobody.
        ``unique``: the caller knows no other file of the run renders to ``key`` (see
        ``push.build_plan``), so it is not even checked."""
        if unique:
            self._counts["skip"] += 1
        else:
            self._note(key, path, "skip", -1)

    def count_unique_skips(self, files: int) -> None:
        """``skip_unchanged(key, path, unique=True)`` for that many files at once."""
        self._counts["skip"] += files

    def _note(self, key: str, path: str, kind: str, position: int) -> None:
        self._counts[kind] += 1
        self._pending.append((key, path, kind))
        self._pending_at.append(position)
        if len(self._pending) >= INDEX_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._index is None:
            self._index = KeyIndex()
        pending, self._pending = self._pending, []
        at, self._pending_at = self._pending_at, []
        for c in self._index.add(pending):
            position = at[c.row]
            paths = self._conflicts.get(c.key)
            if c.path == c.first or (paths is not None and c.path in paths):
                self._drop(c.kind, position)  # the same file again
                continue
            if paths is None:
                paths = self._conflicts[c.key] = [c.first]
                self._counts[c.first_kind] -= 1
                self._counts["conflict"] += 1
            paths.append(c.path)
            self._counts[c.kind] -= 1
            self._counts["conflict"] += 1

    def _drop(self, kind: str, position: int) -> None:
        self._counts[kind] -= 1
        if position >= 0:
            dropped = self._kept.drop(position)
            if dropped.kind is ActionKind.UPLOAD:
                self._upload_bytes -= dropped.file.size

    def fail(self, f: LocalFile, key: str, reason: str) -> None:
        self.add(Action(ActionKind.FAIL, f, key, reason))

    def finish(self) -> None:
        """Check the last keys."""
        self._flush()

    def close(self) -> None:
        """Planning is done: check the last keys and remove the key index. (The kept actions
        stay until the plan goes.)"""
        self.finish()
        if self._index is not None:
            self._index.close()
            self._index = None

    def kept(self) -> Iterator[Action]:
        """The actions kept, in scan order, each one that conflicts marked so."""
        self.finish()
        conflicts = self._conflicts
        for a in self._kept:
            if conflicts and a.kind is not ActionKind.FAIL and a.kind is not ActionKind.CONFLICT:
                paths = conflicts.get(a.key)
                if paths is not None:
                    reason = _conflict_reason(paths, a.file.path)
                    a = Action(ActionKind.CONFLICT, a.file, a.key, reason, a.hash)
            yield a

    @property
    def actions(self) -> list[Action]:
        """``kept()`` as a list: every kept action in memory at once (tests, small plans)."""
        return list(self.kept())

    @property
    def conflicts(self) -> list[Conflict]:
        """Every file whose key another file renders to too, grouped by key."""
        self.finish()
        return [
            Conflict(key, path, _conflict_reason(paths, path))
            for key, paths in self._conflicts.items()
            for path in paths
        ]

    @property
    def skipped(self) -> int:
        self.finish()
        return self._counts["skip"]

    def files_lost(self) -> int:
        """Files planning left out: FAIL actions, and failing problems that are not one (an
        unreadable folder)."""
        lost = sum(1 for p in self.problems if p.fails and p.path not in self._fail_paths)
        return self._counts[ActionKind.FAIL.value] + lost

    def totals(self) -> dict[str, int]:
        self.finish()
        counts = self._counts
        upload_bytes = self._upload_bytes
        if self._conflicts:  # some counted uploads are conflicts now: rare, so count again
            upload_bytes = sum(a.file.size for a in self.kept() if a.kind is ActionKind.UPLOAD)
        return {
            "files": sum(counts[k.value] for k in ActionKind),
            "upload": counts["upload"],
            "skip": counts["skip"],
            "conflict": counts["conflict"],
            "fail": counts["fail"],
            "upload_bytes": upload_bytes,
            "delete": len(self.deletes),
            "delete_bytes": sum(d.remote.size for d in self.deletes),
        }


@dataclass(frozen=True, slots=True)
class Conflict:
    """A file whose key another file of the run renders to as well."""

    key: str
    path: str
    reason: str


def _conflict_reason(paths: list[str], path: str) -> str:
    """ "conflict: LATER and FIRST …": the first file names the second, the others themselves."""
    later = paths[1] if path == paths[0] else path
    return f"conflict: {later} and {paths[0]} both render to this key"
