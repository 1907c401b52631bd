"""Writing restored files under a target folder without ever leaving it.

Every relative path is checked (no `..`, `.` or empty segment, not absolute, no backslash,
no drive letter, no control character). Folders are then walked and created through directory
file descriptors opened with O_NOFOLLOW, so a symlink planted anywhere below the target — even
one created while the restore runs — makes that file fail instead of redirecting the write.
A file is written to a temporary name beside its final one and given its mtime; a batch of such
files is made durable (one syncfs, or an fsync each) and only then renamed into place: an
interrupted restore, even by a power loss, never leaves a partial file under a final name.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from hoard import durable
from hoard.errors import HoardError

log = logging.getLogger("hoard.restore")

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
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
    if _CONTROL.search(rel):
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
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            nfd = _open_child(root, fd, name, create)[0]
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


class Existing:
    """What is at root/rel, reached without following symlinks, for many paths: a folder
    found missing is remembered, and the paths below it are missing without a look (a
    restore into a new folder costs no system call per file, where the walk cost four)."""

    def __init__(self) -> None:
        self._missing: set[tuple[str, tuple[str, ...]]] = set()

    def stat(self, root: str, rel: str) -> os.stat_result | None:
        """lstat of root/rel; None if it does not exist. UnsafePath for a symlink or a file
        where a folder should be."""
        parts = check_relative(rel)
        folders = parts[:-1]
        for depth in range(len(folders) + 1):
            if (root, tuple(folders[:depth])) in self._missing:
                return None
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            self._missing.add((root, ()))
            return None
        try:
            for depth, name in enumerate(folders, 1):
                try:
                    child = _open_child(root, fd, name, create=False)[0]
                except FileNotFoundError:
                    self._missing.add((root, tuple(folders[:depth])))
                    return None
                os.close(fd)
                fd = child
            try:
                return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
        finally:
            os.close(fd)


def make_folder(root: str, rel: str) -> None:
    """Create root/rel (and its parents) without following any symlink below root."""
    os.makedirs(root, exist_ok=True)
    with _dir_fd(root, check_relative(rel), create=True):
        pass


class Folders:
    """The folders files are being placed in, walked once and kept open.

    Each folder below a root is reached the safe way (``_dir_fd``'s O_NOFOLLOW walk, one level
    at a time from its already-open parent) and its descriptor is kept for the next files placed
    in it, so a symlink planted later cannot redirect anything: hoard writes through the folder
    it opened, not through a path. At most ``limit`` idle folders stay open (one with a new
    entry stays open for the next ``sync``, up to four times the limit).

    Durability in bulk: files are written under temporary names (``stage``) and ``commit``
    makes a batch of them durable with one ``syncfs`` per file system (``durable``; where it is
    not available or not trusted each file was fsynced when staged), only then renames them
    into place, and then makes the folders that got a new entry (a file renamed into it, a
    subfolder created) durable: with a second ``syncfs`` when every folder is on one file system
    it is trusted on, else with an fsync of each. A caller records a file as done only after
    the ``commit`` that renamed it returned.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.batch_durable = durable.available()
        self._lock = threading.Lock()
        #: file systems where syncfs cannot stand in for an fsync each (durable.trusted)
        self._untrusted: set[int] = set()
        self._open: OrderedDict[tuple[str, tuple[str, ...]], list[int]] = OrderedDict()  # fd, users
        self._changed: set[tuple[str, tuple[str, ...]]] = set()
        #: a descriptor per file system, opened before anything was written there: syncfs on
        #: it reports every write-back error since
        self._watch: dict[int, int] = {}

    @contextmanager
    def folder(self, root: str, parts: list[str]) -> Iterator[int]:
        """The descriptor of root/parts (created as needed), held for the block."""
        key = (root, tuple(parts))
        fd = self._acquire(key)
        try:
            yield fd
        finally:
            with self._lock:
                self._open[key][1] -= 1
                self._trim()

    def syncs(self, device: int) -> bool:
        """Whether a batch on this file system is made durable by one syncfs (else each file
        is fsynced when staged)."""
        return device in self._watch

    def changed(self, root: str, parts: list[str]) -> None:
        with self._lock:
            self._changed.add((root, tuple(parts)))

    def _acquire(self, key: tuple[str, tuple[str, ...]]) -> int:
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                entry[1] += 1
                self._open.move_to_end(key)
                return entry[0]
        root, parts = key
        if parts:
            with self.folder(root, list(parts[:-1])) as parent:
                fd, created = _open_child(root, parent, parts[-1], create=True)
                if created:
                    self.changed(root, list(parts[:-1]))
        else:
            fd = _open_root(root)
        device = os.fstat(fd).st_dev if self.batch_durable else 0
        fresh = self.batch_durable and device not in self._watch and device not in self._untrusted
        trusted = fresh and durable.trusted(fd)
        with self._lock:
            if fresh and device not in self._watch and device not in self._untrusted:
                if trusted:
                    self._watch[device] = os.dup(fd)
                else:
                    self._untrusted.add(device)
            entry = self._open.get(key)
            if entry is not None:  # another thread opened it meanwhile
                os.close(fd)
                entry[1] += 1
                return entry[0]
            self._open[key] = [fd, 1]
            return fd

    def _trim(self) -> None:
        """Close idle folders beyond the limit, oldest first. A changed folder is kept open
        for the next ``sync`` unless four times the limit are open; then it is fsynced first."""
        if len(self._open) <= self.limit:
            return
        for key, (fd, users) in list(self._open.items()):
            if len(self._open) <= self.limit:
                return
            if users == 0 and key not in self._changed:
                del self._open[key]
                os.close(fd)
        for key, (fd, users) in list(self._open.items()):
            if len(self._open) <= 4 * self.limit:
                return
            if users == 0:
                os.fsync(fd)
                self._changed.discard(key)
                del self._open[key]
                os.close(fd)

    def sync(self) -> None:
        """Make the entries of every folder changed since the last sync durable: one syncfs
        when all the folders are on one file system it is trusted on, else an fsync of each
        (a folder closed meanwhile is reopened the safe way). A folder whose sync failed stays
        changed, for the next sync."""
        with self._lock:
            if not self._changed:
                return
            todo = list(self._changed)
            self._changed.clear()
            only = len(self._watch) == 1 and not self._untrusted
            whole = next(iter(self._watch.values())) if only else None
        done = 0
        try:
            if whole is not None:
                durable.syncfs(whole)
                done = len(todo)
            else:
                for root, parts in todo:
                    with self.folder(root, list(parts)) as fd:
                        os.fsync(fd)
                    done += 1
        finally:
            with self._lock:
                self._changed.update(todo[done:])
                self._trim()  # changed folders kept open for this sync may close now

    def commit(self, staged: list[Staged]) -> list[Exception | None]:
        """Make the staged files durable, rename each into place and make the new names
        durable (``sync``); returns, for each file, None (it is in place, durably) or why it is
        not (its temporary file was removed). Raises OSError when the names cannot be made
        durable."""
        failed: list[Exception | None] = [None] * len(staged)
        synced = set()
        for device in {s.device for s in staged if not s.durable}:
            fd = self._watch.get(device)
            try:
                if durable.syncfs(fd):
                    synced.add(device)
            except OSError as exc:  # find the files it was about: fsync each below
                log.debug("syncfs failed (%s); fsyncing each file of the batch", exc)
        for i, s in enumerate(staged):
            try:
                with self.folder(s.root, list(s.folder)) as fd:
                    try:
                        if not s.durable and s.device not in synced:
                            _fsync_at(fd, s.tmp)
                        os.rename(s.tmp, s.name, src_dir_fd=fd, dst_dir_fd=fd)
                    except BaseException:
                        with suppress(OSError):
                            os.unlink(s.tmp, dir_fd=fd)
                        raise
                    self.changed(s.root, list(s.folder))  # while held: not closed unsynced
            except (OSError, HoardError) as exc:
                failed[i] = exc
        self.sync()
        return failed

    def close(self) -> None:
        self.sync()
        with self._lock:
            for fd, _ in self._open.values():
                os.close(fd)
            self._open.clear()
            for fd in self._watch.values():
                os.close(fd)
            self._watch.clear()


def _open_root(root: str) -> int:
    made = []
    at = root
    while not os.path.isdir(at) and os.path.dirname(at) != at:
        made.append(at)
        at = os.path.dirname(at)
    os.makedirs(root, exist_ok=True)
    for folder in reversed(made):  # make the new folders' names durable
        parent = os.open(os.path.dirname(folder), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(parent)
        finally:
            os.close(parent)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _fsync_at(folder: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_child(root: str, parent: int, name: str, create: bool) -> tuple[int, bool]:
    """(descriptor of folder ``name`` in ``parent``, whether this call created it), never
    through a symlink."""
    created = False
    if create:
        try:
            os.mkdir(name, 0o777, dir_fd=parent)
            created = True
        except FileExistsError:
            pass
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
        )
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafePath(
            f"{name!r} under {root} is a symlink or not a folder ({exc.strerror})"
        ) from None
    return fd, created


@dataclass(frozen=True)
class Staged:
    """A file written and verified under its temporary name beside ``name`` in the folder
    root/folder, waiting for ``Folders.commit`` to give it its name."""

    root: str
    folder: tuple[str, ...]
    name: str
    tmp: str
    inode: int
    device: int
    durable: bool  # fsynced already (where the batch cannot be synced at once)


def temp_name(name: str) -> str:
    """The temporary name of a file being restored as ``name``: ``.NAME.hoard-part``, or for a
    name too long for that, one derived from a hash of it (so two long names never share one;
    a staged file keeps its temporary name until its batch is committed)."""
    tmp = f".{name}{TEMP_SUFFIX}"
    if len(os.fsencode(tmp)) <= 255:
        return tmp
    import hashlib

    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:40]}{TEMP_SUFFIX}"


def stage(
    folders: Folders, root: str, rel: str, write: Callable[[int], None], mtime_ns: int | None
) -> Staged:
    """Write root/rel's content to a temporary name beside it through ``write(fd)`` and give it
    its mtime; ``folders.commit`` then makes it durable and renames it into place. Where a batch
    cannot be made durable at once (no syncfs), the file is fsynced here. Raises UnsafePath
    when a symlink sits in the way, including at the final name; on any error the temporary
    file is removed."""
    parts = check_relative(rel)
    with folders.folder(root, parts[:-1]) as fd:
        name = parts[-1]
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise UnsafePath(f"{os.path.join(root, rel)} is a symlink; not replaced")
        except FileNotFoundError:
            pass
        tmp = temp_name(name)
        tfd = os.open(
            tmp,
            os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=fd,
        )
        try:
            try:
                write(tfd)
                if mtime_ns is not None:
                    os.utime(tfd, ns=(mtime_ns, mtime_ns))
                st = os.fstat(tfd)
                synced_alone = not folders.syncs(st.st_dev)
                if synced_alone:
                    os.fsync(tfd)
            finally:
                os.close(tfd)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        return Staged(root, tuple(parts[:-1]), name, tmp, st.st_ino, st.st_dev, synced_alone)
