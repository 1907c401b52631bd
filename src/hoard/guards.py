"""The checks that stand between `sync --delete` and an emptied bucket. Pure: every fact is
passed in, every refusal comes back as a sentence saying what to do about it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hoard.errors import UsageError


@dataclass(frozen=True)
class MaxDelete:
    """`20%` of the objects under the prefix, or an absolute count like `50`."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> MaxDelete:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
        if not m or (not m.group(2) and "." in m.group(1)):
            raise UsageError(f"--max-delete {text!r}: give a percentage (20%) or a count (50)")
        return cls(float(m.group(1)), bool(m.group(2)))

    def allows(self, deletes: int, total: int) -> bool:
        if self.percent:
            return total > 0 and deletes * 100 <= self.value * total
        return deletes <= self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}"


@dataclass(frozen=True)
class Facts:
    """What is known when the deletes are about to happen."""

    deletes: int
    remote_objects: int
    source_files: int
    device_now: int
    device_last: int | None
    marker: str | None = None
    marker_present: bool = True
    errors: tuple[str, ...] = ()


def refusals(facts: Facts, limit: MaxDelete, force: bool, allow_empty_source: bool) -> list[str]:
    """Why the deletes must not happen (empty when they may)."""
    if facts.deletes == 0:
        return []
    why: list[str] = []
    if facts.errors:
        why.append(
            f"{len(facts.errors)} errors happened during the scan, the listing or the "
            f"uploads (first: {facts.errors[0]}); fix them and run again"
        )
    if not allow_empty_source:
        if facts.source_files == 0:
            why.append(
                "the source is empty (an unmounted disk?); pass --allow-empty-source if "
                "it really should be"
            )
        if facts.device_last is not None and facts.device_now != facts.device_last:
            why.append(
                "the source is on a different device than last time (an unmounted "
                "disk, or another disk mounted there?); pass --allow-empty-source if "
                "that is right"
            )
        if facts.marker is not None and not facts.marker_present:
            why.append(
                f"the marker file {facts.marker!r} is missing from the source root "
                "(not the disk it should be?); pass --allow-empty-source to go on"
            )
    if not force and not limit.allows(facts.deletes, facts.remote_objects):
        why.append(
            f"{facts.deletes} of {facts.remote_objects} objects would be deleted, more "
            f"than --max-delete {limit}; check the source, then pass --force or raise "
            "--max-delete"
        )
    return why
