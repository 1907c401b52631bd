"""Pure planning: what to do with each file, and why. No I/O here.

``decide`` compares a file (and its content hash) with what is known of its destination key;
``Plan`` collects the decisions, detects two files rendering to one key, and totals them.
`--dry-run` prints exactly a Plan; a real run executes exactly the same Plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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


@dataclass
class Plan:
    """Actions in scan order, with conflicts marked and problems kept for the report."""

    actions: list[Action] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _by_key: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, action: Action) -> None:
        """Add a decision; a second, different file with the same key makes both conflicts."""
        if action.kind is ActionKind.FAIL:
            self.actions.append(action)
            return
        first = self._by_key.get(action.key)
        if first is None:
            self._by_key[action.key] = len(self.actions)
            self.actions.append(action)
            return
        other = self.actions[first]
        if other.file.path == action.file.path or (
            other.kind is ActionKind.CONFLICT
            and any(
                a.key == action.key and a.file.path == action.file.path
                for a in self.actions[first:]
                if a.kind is ActionKind.CONFLICT
            )
        ):
            return  # the same file reached through two overlapping sources
        reason = f"conflict: {action.file.path} and {other.file.path} both render to this key"
        if other.kind is not ActionKind.CONFLICT:
            self.actions[first] = Action(
                ActionKind.CONFLICT, other.file, other.key, reason, other.hash
            )
        self.actions.append(
            Action(ActionKind.CONFLICT, action.file, action.key, reason, action.hash)
        )

    def fail(self, f: LocalFile, key: str, reason: str) -> None:
        self.actions.append(Action(ActionKind.FAIL, f, key, reason))

    @property
    def conflicts(self) -> list[Action]:
        return [a for a in self.actions if a.kind is ActionKind.CONFLICT]

    def totals(self) -> dict[str, int]:
        counts = Counter(a.kind.value for a in self.actions)
        upload_bytes = sum(a.file.size for a in self.actions if a.kind is ActionKind.UPLOAD)
        return {
            "files": len(self.actions),
            "upload": counts["upload"],
            "skip": counts["skip"],
            "conflict": counts["conflict"],
            "fail": counts["fail"],
            "upload_bytes": upload_bytes,
            "delete": len(self.deletes),
            "delete_bytes": sum(d.remote.size for d in self.deletes),
        }
