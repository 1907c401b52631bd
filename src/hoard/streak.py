"""Giving up on a store that fails everything: a run (upload or download) that sees
GIVE_UP_AFTER files in a row fail with ``Transient`` after all their retries stops, rather
than spend each further file's retries (about 4 s with the default policy) to fail the same
way. Found benchmarking: 2,000 files against a store out of space, which answered every PUT
with 500 InternalError, took 16 minutes to fail one by one."""

from __future__ import annotations

GIVE_UP_AFTER = 16


class FailureStreak:
    """Files in a row that failed a temporary way through all their retries. A file that got
    through ends the streak; a failure of another kind (a refusal, an unreadable file) says
    nothing about the store's health and neither ends it nor adds to it."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, ok: bool, transient: bool, error: str) -> str:
        """Count one file's outcome; why the run should stop, or ""."""
        if ok:
            self.count = 0
        elif transient:
            self.count += 1
            if self.count >= GIVE_UP_AFTER:
                return (
                    f"the store failed {self.count} files in a row, each after all its "
                    f"retries; the last: {error}"
                )
        return ""
