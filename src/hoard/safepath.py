"""Writing restored files under a target folder without ever leaving it.

Every relative path is checked (no `..`, `.` or empty segment, not absolute, no backslash,
no drive letter, no control character). Folders are then walked and created through directory
file descriptors opened with O_NOFOLLOW, so a symlink planted anywhere below the target — even
one created while the restore runs — makes that file fail instead of redirecting the write.
A file is written to a temporary name beside its final one, flushed, given its mtime, and
renamed into place: an interrupted restore never leaves a partial file under a final name.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

from hoard.errors import HoardError

_DRIVE = re.compile(r"^[A-Za-z]:")
TEMP_SUFFIX = ".hoard-part"


class UnsafePath(HoardError):
    """A key or recorded path would escape the restore target, or a symlink was found where a
    folder or file should be. Nothing was written for it."""


def check_relative(rel: str) -> list[str]:
    """The segments of a safe relative path; raise UnsafePath saying what is wrong."""
    if not rel:
        raise UnsafePath("empty path")
    if rel.startswith("/") or _DRIVE.match(rel):
        raise UnsafePath(f"{rel!r} is absolute")
    if "\\" in rel:
        raise UnsafePath(f"{rel!r} contains a backslash")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in rel):
        raise UnsafePath(f"{rel!r} contains a control character")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{rel!r} has a '..', '.' or empty segment")
    return parts


def fold(path: str) -> str:
    """The form two names share on a case-insensitive, normalising filesystem (macOS, Windows)."""
    return unicodedata.normalize("NFC", path).casefold()


@contextmanager
def _dir_fd(root: str, parts: list[str], create: bool) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            try:
                nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise UnsafePath(
                    f"{name!r} under {root} is a symlink or not a folder ({exc.strerror})"
                ) from None
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def existing(root: str, rel: str) -> os.stat_result | None:
    """lstat of root/rel reached without following symlinks; None if it does not exist."""
    parts = check_relative(rel)
    try:
        with _dir_fd(root, parts[:-1], create=False) as fd:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def make_folder(root: str, rel: str) -> None:
    """Create root/rel (and its parents) without following any symlink below root."""
    os.makedirs(root, exist_ok=True)
    with _dir_fd(root, check_relative(rel), create=True):
        pass


def place(root: str, rel: str, write: Callable[[BinaryIO], None], mtime_ns: int | None) -> int:
    """Create root/rel through ``write(stream)``; returns the new file's inode.

    Raises UnsafePath when a symlink sits in the way, including at the final name.
    """
    parts = check_relative(rel)
    os.makedirs(root, exist_ok=True)
    with _dir_fd(root, parts[:-1], create=True) as fd:
        name = parts[-1]
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise UnsafePath(f"{os.path.join(root, rel)} is a symlink; not replaced")
        except FileNotFoundError:
            pass
        tmp = f".{name}{TEMP_SUFFIX}"[-255:]
        tfd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        try:
            with os.fdopen(tfd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            if mtime_ns is not None:
                os.utime(tmp, ns=(mtime_ns, mtime_ns), dir_fd=fd, follow_symlinks=False)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            os.fsync(fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        return os.stat(name, dir_fd=fd, follow_symlinks=False).st_ino
