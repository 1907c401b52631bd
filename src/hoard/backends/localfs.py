"""A local or mounted folder as a store: the embedded default, no account needed.

Objects are files under the root at their key's path; hoard's metadata and tier live in a
sidecar `.hoard/meta/<key>.json`, with the etag of the object it describes. Every object is
written to a temporary file in the target folder, fsynced, then renamed into place, so a crash
never leaves a partial object under its key. The sidecar (temporary file and rename) and the
renames themselves become durable at ``flush``, one barrier for a batch of uploads (syncfs of
the folder's file system; elsewhere an fsync of each sidecar and touched folder), which the
catalog waits for before it records them. A sidecar whose etag is not its object's (a crash
kept one and not the other) is ignored: the object then counts as one without hoard metadata.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import itertools
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO

from hoard import durable
from hoard.backends.base import Backend, Capabilities, Journal, PutResult
from hoard.errors import (
    BackendError,
    BucketNotFound,
    DiskFull,
    InvalidKey,
    NotFound,
    PermissionDenied,
    SourceUnreadable,
)
from hoard.model import RemoteObject

META_DIR = ".hoard"
TMP_PREFIX = ".hoard-tmp-"
CAPABILITIES = Capabilities(scheme="file", tiers=("standard",), default_tier="standard")


def _translate(exc: OSError, what: str) -> BackendError:
    detail = f"{what}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(detail)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(detail)
    if exc.errno == errno.ENOENT:
        return NotFound(detail)
    return BackendError(detail)


class LocalBackend(Backend):
    capabilities = CAPABILITIES

    def __init__(self, root: str) -> None:
        """The root folder is created by the first write; its parent must exist (a missing
        parent usually means an unmounted disk)."""
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = "file://" + self.root
        self._lock = threading.Lock()
        #: (object, sidecar, device) written since the last flush
        self._unsynced: builtins.list[tuple[str, str, int]] = []
        self._root_fd: int | None = None
        self._syncfs_trusted = False  # durable.trusted of the root's file system
        if not os.path.isdir(self.root) and not os.path.isdir(os.path.dirname(self.root) or "/"):
            raise BucketNotFound(f"destination folder {self.root} does not exist, nor its parent")

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if parts[0] == META_DIR or any(p in ("", ".", "..") for p in parts):
            raise InvalidKey(f"key {key!r} cannot be stored in a local folder")
        return os.path.join(self.root, *parts)

    def _meta_path(self, key: str) -> str:
        return os.path.join(self.root, META_DIR, "meta", *key.split("/")) + ".json"

    def put(
        self,
        key: str,
        path: str,
        size: int,
        metadata: Mapping[str, str],
        tier: str | None,
        journal: Journal | None = None,
    ) -> PutResult:
        dest = self._path(key)
        tier = self.capabilities.tier(tier)
        meta_path = self._meta_path(key)
        try:
            self._watch_root()
            _atomic_copy(path, dest)
            st = os.stat(dest)
            doc = {"metadata": dict(metadata), "tier": tier, "etag": _etag(st)}
            _atomic_write(meta_path, json.dumps(doc).encode(), durable=False)
        except NotADirectoryError:
            raise BackendError(
                f"key {key!r} needs a folder where a file of the same name is "
                "stored; a local folder cannot hold both"
            ) from None
        except IsADirectoryError:
            raise BackendError(
                f"key {key!r} names a folder of other objects in the local "
                "folder; it cannot also be a file"
            ) from None
        except OSError as exc:
            raise _translate(exc, f"writing {dest}") from None
        with self._lock:
            self._unsynced.append((dest, meta_path, st.st_dev))
        return PutResult(etag=_etag(st), tier=tier)

    def _watch_root(self) -> None:
        """Open the root once, before the first write: syncfs on it reports every write error
        of its file system from then on."""
        if self._root_fd is None:
            os.makedirs(self.root, exist_ok=True)
            with self._lock:
                if self._root_fd is None:
                    self._root_fd = os.open(self.root, os.O_RDONLY)
                    self._syncfs_trusted = durable.trusted(self._root_fd)

    def flush(self) -> None:
        with self._lock:
            pending, self._unsynced = self._unsynced, []
        if not pending:
            return
        try:
            root_dev = os.fstat(self._root_fd).st_dev if self._root_fd is not None else -1
            if (
                self._syncfs_trusted
                and {dev for _, _, dev in pending} == {root_dev}
                and durable.syncfs(self._root_fd)
            ):
                return
            folders = set()
            for obj, meta_path, _ in pending:
                _fsync_path(meta_path)
                for path in (obj, meta_path):
                    folder = os.path.dirname(path)
                    while folder.startswith(self.root) and folder not in folders:
                        folders.add(folder)
                        folder = os.path.dirname(folder)
            for folder in sorted(folders, key=len, reverse=True):
                _fsync_path(folder)
        except OSError as exc:
            with self._lock:
                self._unsynced = pending + self._unsynced
            raise _translate(exc, f"making the objects written to {self.root} durable") from None

    def close(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def open(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - returned to the caller
        except OSError as exc:
            raise _translate(exc, key) from None
        if offset:
            fh.seek(offset)
        if length is None:
            return fh
        with fh:
            return io.BytesIO(fh.read(length))

    def stat(self, key: str) -> RemoteObject:
        try:
            st = os.stat(self._path(key))
        except OSError as exc:
            raise _translate(exc, key) from None
        meta, tier = self._read_meta(key, _etag(st))
        return RemoteObject(
            key=key,
            size=st.st_size,
            etag=_etag(st),
            tier=tier,
            modified_ns=st.st_mtime_ns,
            metadata=meta,
        )

    def _read_meta(self, key: str, etag: str | None = None) -> tuple[dict[str, str], str]:
        """The sidecar's metadata and tier; no metadata if it describes another version of
        the object than the one of ``etag``."""
        try:
            with open(self._meta_path(key), "rb") as fh:
                doc = json.load(fh)
            if etag is not None and doc.get("etag", etag) != etag:
                return {}, "standard"
            return dict(doc.get("metadata", {})), str(doc.get("tier", "standard"))
        except (OSError, ValueError, AttributeError):
            return {}, "standard"

    def list(self, prefix: str = "") -> Iterator[RemoteObject]:
        folder, _, start = prefix.rpartition("/")
        top = os.path.join(self.root, *folder.split("/")) if folder else self.root
        if folder.split("/")[0] == META_DIR:
            return
        yield from self._walk(top, folder + "/" if folder else "", start)

    def _walk(self, path: str, key_prefix: str, name_start: str) -> Iterator[RemoteObject]:
        try:
            with os.scandir(path) as it:
                entries = [
                    (e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e)
                    for e in it
                    if e.name.startswith(name_start)
                ]
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _translate(exc, f"listing {path}") from None
        entries.sort(key=lambda pair: pair[0])
        for sort_name, entry in entries:
            if entry.name.startswith(TMP_PREFIX) or (not key_prefix and entry.name == META_DIR):
                continue
            if sort_name.endswith("/"):
                yield from self._walk(entry.path, key_prefix + entry.name + "/", "")
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                yield RemoteObject(
                    key=key_prefix + entry.name,
                    size=st.st_size,
                    etag=_etag(st),
                    modified_ns=st.st_mtime_ns,
                )

    def delete(
        self, keys: Iterable[str], if_match: Mapping[str, str] | None = None
    ) -> builtins.list[str]:
        kept = []
        for key in keys:
            if if_match and key in if_match:
                try:
                    current = _etag(os.stat(self._path(key)))
                except FileNotFoundError:
                    continue
                if current != if_match[key]:
                    kept.append(key)
                    continue
            for path in (self._path(key), self._meta_path(key)):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise _translate(exc, f"deleting {key}") from None
                self._prune(os.path.dirname(path))
        return kept

    def copy(self, src: str, dest: str) -> None:
        try:
            meta, tier = self._read_meta(src, _etag(os.stat(self._path(src))))
            _atomic_copy(self._path(src), self._path(dest))
            doc = {"metadata": meta, "tier": tier, "etag": _etag(os.stat(self._path(dest)))}
            _atomic_write(self._meta_path(dest), json.dumps(doc).encode())
        except SourceUnreadable as exc:
            raise NotFound(f"copying {src}: {exc}") from None
        except OSError as exc:
            raise _translate(exc, f"copying {src} to {dest}") from None

    def _prune(self, folder: str) -> None:
        stop = (self.root, os.path.join(self.root, META_DIR))
        while folder not in stop and folder.startswith(self.root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)


def _etag(st: os.stat_result) -> str:
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


_tmp_names = itertools.count()


def _tmp_in(folder: str) -> tuple[int, str]:
    """A new temporary file in ``folder`` (made if missing), open for writing, mode 0600."""
    for _ in range(100):
        tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{next(_tmp_names)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:  # left by an earlier process that had our pid
            continue
    raise OSError(errno.EEXIST, "no temporary file name left", folder)


def _atomic_copy(src: str, dest: str) -> None:
    try:
        inp = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceUnreadable(f"{src}: {exc.strerror or exc}") from None
    try:
        fd, tmp = _tmp_in(os.path.dirname(dest))
        try:
            try:
                _copy(inp, fd, src)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except BaseException:
            _unlink_quietly(tmp)
            raise
    finally:
        os.close(inp)


def _copy(inp: int, out: int, src: str) -> None:
    while True:
        try:
            chunk = os.read(inp, 1 << 20)
        except OSError as exc:
            raise SourceUnreadable(f"{src}: {exc.strerror or exc}") from None
        if not chunk:
            return
        _write_all(out, chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _atomic_write(dest: str, data: bytes, durable: bool = True) -> None:
    fd, tmp = _tmp_in(os.path.dirname(dest))
    try:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
