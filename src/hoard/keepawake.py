"""Keep the machine from sleeping while a job runs.

``Inhibitor`` is the small interface the runner talks to; ``WakepyInhibitor`` is the real one
(wakepy: D-Bus on Linux desktops, caffeinate on macOS, SetThreadExecutionState on Windows).
Where no mechanism works (a server without a session bus, a container) the job runs anyway and
the caller is warned once per job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

log = logging.getLogger("hoard.keepawake")


class Unavailable(Exception):
    """No way to keep this machine awake; the message says why."""


class Inhibitor(Protocol):
    def acquire(self, reason: str) -> None:
        """Keep the machine awake from now on; raise ``Unavailable`` if it cannot."""

    def release(self) -> None:
        """Let the machine sleep again (only called after a successful ``acquire``)."""


class WakepyInhibitor:
    def __init__(self) -> None:
        self._mode: Any = None

    def acquire(self, reason: str) -> None:
        try:
            from wakepy import keep
        except ImportError as exc:  # pragma: no cover - wakepy is a dependency
            raise Unavailable(f"wakepy is not installed ({exc})") from None
        mode = keep.running(on_fail="pass")
        mode.__enter__()
        if not mode.active:
            mode.__exit__(None, None, None)
            raise Unavailable(_why(mode.result))
        log.debug("keeping the machine awake with %s for %s", mode.active_method, reason)
        self._mode = mode

    def release(self) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            mode.__exit__(None, None, None)


def _why(result: Any) -> str:
    """One line from wakepy's result: the methods tried, grouped by why each failed."""
    by_reason: dict[str, list[str]] = {}
    try:
        for m in result.list_methods():
            reason = str(m.failure_reason)
            reason = reason.split("failed with message:", 1)[-1].strip().strip("\"')")
            reason = reason.split("!")[0].split(". ")[0].strip()
            by_reason.setdefault(reason, []).append(str(m.method_name))
    except Exception:
        return "no method worked"
    if not by_reason:
        return "wakepy knows no method for this platform"
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


@contextmanager
def kept_awake(
    inhibitor: Inhibitor | None, reason: str, warn: Callable[[str], None]
) -> Iterator[bool]:
    """Hold ``inhibitor`` for the ``with`` block (released on success, failure or interrupt).
    Yields whether the machine is actually kept awake; ``None`` means not asked."""
    if inhibitor is None:
        yield False
        return
    try:
        inhibitor.acquire(reason)
    except Unavailable as exc:
        warn(f"cannot keep the machine awake ({exc}); it may sleep during the transfer")
        yield False
        return
    try:
        yield True
    finally:
        inhibitor.release()
