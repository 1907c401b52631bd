"""One writer per catalog: an exclusive lock on a file next to it.

The lock is ``flock`` on ``CATALOG.lock``: the kernel releases it when the holder exits, however
it exits (SIGKILL, a crash, a closed laptop that never comes back), so a dead holder never
blocks anyone. Inside the file the holder writes who it is (pid, command, start time) for the
message a refused process prints; a holder that ends normally empties it. Finding a record
while the lock itself is free therefore means the last holder was killed: the record is replaced
and the caller is told, so it can mark that holder's job interrupted.

The lock file is never deleted (deleting a locked file lets a second process lock a new file
of the same name). Descriptors are not inherited by child processes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType

from hoard.catalog import Catalog
from hoard.errors import CatalogBusy, Interrupted

log = logging.getLogger("hoard.lock")

Clock = Callable[[], int]
#: Waits about this many seconds; returns True when the caller was asked to stop meanwhile.
Sleep = Callable[[float], bool]


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started_ns: int
    host: str = ""

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            doc = json.loads(text)
            return cls(int(doc["pid"]), str(doc["command"]), int(doc["started_ns"]), doc["host"])
        except (ValueError, KeyError, TypeError):
            return None


def lock_path(catalog_path: str) -> str:
    return os.path.abspath(catalog_path) + ".lock"


class CatalogLock:
    """``with CatalogLock(path, "hoard push", clock, sleep).acquire(wait_s): …``

    ``describe`` turns the holder into the words of the refusal (the CLI adds its job).
    """

    def __init__(
        self,
        path: str,
        command: str,
        clock: Clock,
        sleep: Sleep,
        describe: Callable[[Holder], str] | None = None,
    ) -> None:
        self.path = path
        self.command = command
        self.clock = clock
        self.sleep = sleep
        self.describe = describe or _describe
        self.fd: int | None = None
        #: The record a killed holder left behind, found and cleared by ``acquire``.
        self.stale: Holder | None = None

    def acquire(
        self, wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> CatalogLock:
        """Take the lock, waiting up to ``wait_s`` for a running holder; raise CatalogBusy."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        waited_s = 0.0
        told = False
        try:
            while not _try_lock(fd):
                holder = Holder.parse(_read(fd))
                who = self.describe(holder) if holder else "another hoard process"
                if waited_s >= wait_s:
                    raise CatalogBusy(
                        f"the catalog {self.path.removesuffix('.lock')} is in use by {who}"
                        + (f"; waited {waited_s:g}s" if waited_s else "")
                    )
                if on_wait is not None and not told:
                    on_wait(f"waiting for {who} to finish with the catalog")
                    told = True
                step = min(1.0, wait_s - waited_s)
                if self.sleep(step):
                    raise Interrupted("stopped while waiting for the catalog lock")
                waited_s += step
        except BaseException:
            os.close(fd)
            raise
        self.stale = Holder.parse(_read(fd))
        me = Holder(os.getpid(), self.command, self.clock(), _host_name())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> CatalogLock:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    """An exclusive lock on ``fd`` without waiting; False when another process holds it.
    (POSIX only; fcntl is imported here so that the rest of hoard imports anywhere.)"""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _describe(h: Holder) -> str:
    return f"`{h.command}` (pid {h.pid})"


def hold_catalog(
    catalog: Catalog,
    command: str,
    clock: Clock,
    sleep: Sleep,
    wait_s: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> CatalogLock:
    """Take ``catalog``'s writer lock for ``command`` (raise CatalogBusy naming the running job
    after ``wait_s``). A lock a killed process left is cleared, and its jobs are marked
    interrupted. An in-memory catalog has no lock to take."""

    def describe(h: Holder) -> str:
        job = catalog.running_job(h.pid)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.started_ns / 1e9))
        what = f"job {job['id']}, " if job else ""
        return f"`{h.command}` ({what}pid {h.pid}, since {since})"

    path = "" if catalog.path == ":memory:" else lock_path(catalog.path)
    lock = CatalogLock(path, command, clock, sleep, describe)
    if not path:
        return lock
    lock.acquire(wait_s, on_wait)
    if lock.stale is not None and lock.stale.pid != os.getpid():
        log.warning(
            "cleared the catalog lock left by `%s` (pid %d), which ended without releasing it",
            lock.stale.command,
            lock.stale.pid,
        )
    for job_id in catalog.interrupt_orphans(clock()):
        log.warning("job %d was left running by a process that is gone: marked interrupted", job_id)
    return lock


def _host_name() -> str:
    """socket.gethostname() without importing socket (~4 ms of start-up) where os.uname is."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()
