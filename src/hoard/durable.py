"""Making many written files durable with one call: ``syncfs`` of their file system (Linux).

One ``syncfs`` writes out every dirty page and inode of a file system and waits for them, so a
batch of files costs one journal commit instead of one fsync (and commit) each. It also writes
out other programs' pending writes to that file system. Since Linux 5.8 it reports any
write-back error on that file system since the descriptor passed to it was opened, so callers
open that descriptor before they write.

It stands in for an fsync of each file only where it is as good (``trusted``): Linux 5.8 or
later (before, a failed write-back went unreported) and a local file system whose syncfs writes
everything out. On FUSE (ntfs-3g, sshfs, mergerfs, rclone mount) syncfs asks the daemon for
nothing, except on virtiofs; network file systems differ too. Anywhere else each file is
fsynced.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return fn


def available() -> bool:
    """Whether ``syncfs`` can be called here."""
    return _libc_syncfs() is not None


def syncfs(fd: int | None) -> bool:
    """Write out everything of the file system of ``fd``; False where not available (nothing
    was done). Raises OSError when the kernel reports a failure."""
    fn = _libc_syncfs()
    if fd is None or fn is None:
        return False
    if fn(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


#: file systems whose syncfs writes out every file's data and metadata, as fsync of each would
TRUSTED_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "bcachefs",
                           "tmpfs"})  # fmt: skip


@functools.cache
def _kernel_reports_errors() -> bool:
    """Linux 5.8 or later: syncfs returns write-back errors."""
    try:
        major, minor = os.uname().release.split(".")[:2]
        return (int(major), int("".join(c for c in minor if c.isdigit()) or 0)) >= (5, 8)
    except (AttributeError, ValueError):
        return False


def fs_type(device: int) -> str | None:
    """The type of the mounted file system with this st_dev, from /proc/self/mountinfo."""
    want = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 2 and fields[2] == want and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return None


def trusted(fd: int) -> bool:
    """Whether one syncfs of fd's file system may stand in for an fsync of each file there."""
    if not available() or not _kernel_reports_errors():
        return False
    return fs_type(os.fstat(fd).st_dev) in TRUSTED_TYPES
