"""Making many written files durable with one call: ``syncfs`` of their file system (Linux).

One ``syncfs`` writes out every dirty page and inode of a file system and waits for them, so a
batch of files costs one journal commit instead of one fsync (and commit) each. It also writes
out other programs' pending writes to that file system. Since Linux 5.8 it reports any
write-back error on that file system since the descriptor passed to it was opened, so callers
open that descriptor before they write.
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
