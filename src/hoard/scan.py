"""Sources → a lazy, sorted stream of LocalFile, each stat'ed once.

A source is a folder, a single file, or a glob pattern (`~/Videos/**/*.{mp4,mov}`), each with
an optional base folder that `{rel_path}` and `{base_dir}` are measured from. Problems with one
path (unreadable folder, special file, symlink loop) are reported through ``on_problem`` and the
scan goes on. Symlinks are skipped unless ``follow_symlinks``.
"""

from __future__ import annotations

import os
import stat as stat_mod
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from hoard.errors import SourceMissing, UsageError
from hoard.globs import Glob, compile_all, has_glob, split_pattern
from hoard.model import LocalFile, Problem

ProblemSink = Callable[[Problem], None]

_SPECIAL = {
    stat_mod.S_IFIFO: "a FIFO",
    stat_mod.S_IFSOCK: "a socket",
    stat_mod.S_IFCHR: "a character device",
    stat_mod.S_IFBLK: "a block device",
}


@dataclass(frozen=True)
class Source:
    """What to scan: ``root`` is walked; ``base`` is what relative paths are measured from."""

    root: str
    base: str
    pattern: Glob | None = None
    base_given: bool = True
    single_file: bool = False

    @classmethod
    def parse(cls, spec: str, base: str | None = None) -> Source:
        """A folder, a file, or a pattern; ``~`` is expanded. Raises SourceMissing."""
        text = os.path.expanduser(spec)
        base_abs = os.path.abspath(os.path.expanduser(base)) if base else None
        if base_abs is not None and not os.path.isdir(base_abs):
            raise SourceMissing(f"base folder {base} does not exist")
        if has_glob(text) and not os.path.lexists(text):
            root, rest = split_pattern(text)
            root = os.path.abspath(root)
            if not os.path.isdir(root):
                raise SourceMissing(
                    f"{root} (the folder pattern {spec} starts from) does not exist"
                )
            try:
                glob = Glob.compile(rest, name_only=False)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if base_abs is not None:
                _check_under(root, base_abs, spec)
                return cls(root, base_abs, glob, base_given=True)
            return cls(root, root, glob, base_given=False)
        path = os.path.abspath(text)
        if os.path.isdir(path):
            if base_abs is not None:
                _check_under(path, base_abs, spec)
            return cls(path, base_abs or path, None, base_given=True)
        if os.path.lexists(path):
            parent = os.path.dirname(path)
            if base_abs is not None:
                _check_under(parent, base_abs, spec)
            return cls(
                parent,
                base_abs or parent,
                Glob.compile(_escape(os.path.basename(path))),
                base_given=base_abs is not None,
                single_file=True,
            )
        raise SourceMissing(f"{spec} does not exist")


def _escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[{}]," else c for c in name)


def _check_under(path: str, base: str, spec: str) -> None:
    if os.path.commonpath([path, base]) != base:
        raise UsageError(f"source {spec} is not inside its base folder {base}")


@dataclass(frozen=True)
class Filters:
    """--include / --exclude patterns (relative to the source base) and skip lists."""

    include: tuple[Glob, ...] = ()
    exclude: tuple[Glob, ...] = ()
    skip_names: frozenset[str] = frozenset()
    skip_paths: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        skip_names: Iterable[str] = (),
        skip_paths: Iterable[str] = (),
    ) -> Filters:
        try:
            inc, exc = compile_all(include), compile_all(exclude)
        except ValueError as err:
            raise UsageError(str(err)) from None
        paths = tuple(os.path.abspath(os.path.expanduser(p)).rstrip("/") for p in skip_paths)
        return cls(inc, exc, frozenset(skip_names), paths)

    def skips_path(self, abs_path: str) -> bool:
        return any(abs_path == p or abs_path.startswith(p + "/") for p in self.skip_paths)

    def keeps_file(self, rel: str) -> bool:
        if any(g.match(rel) for g in self.exclude):
            return False
        return not self.include or any(g.match(rel) for g in self.include)

    def prunes_dir(self, rel: str) -> bool:
        return any(g.prunes_dir(rel) for g in self.exclude)


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    dirs: int = 0
    symlinks_skipped: int = 0
    special_skipped: int = 0
    problems: int = 0
    #: Folders holding two names that are one name in NFC (as keys are normalised). Only
    #: below such a folder can two paths of one source render to one `{rel_path}` key.
    nfc_clashes: int = 0


#: ``walk_runs`` yields a folder's files in runs of at most this many.
RUN_FILES = 1024

#: One selected file as the walk found it: its path, its path relative to the source's base
#: (with `/`), its stat and its source. ``to_local_file`` makes the LocalFile.
Entry = tuple[str, str, os.stat_result, Source]


def scan(
    sources: Iterable[Source],
    filters: Filters,
    on_problem: ProblemSink,
    follow_symlinks: bool = False,
    stats: ScanStats | None = None,
) -> Iterator[LocalFile]:
    """Yield every selected regular file of every source, sorted within each source."""
    for entry in walk(sources, filters, on_problem, follow_symlinks, stats):
        yield to_local_file(entry)


def walk(
    sources: Iterable[Source],
    filters: Filters,
    on_problem: ProblemSink,
    follow_symlinks: bool = False,
    stats: ScanStats | None = None,
) -> Iterator[Entry]:
    """``scan`` without the LocalFile: the hot path of a rerun builds one only when needed."""
    for run in walk_runs(sources, filters, on_problem, follow_symlinks, stats):
        yield from run


def walk_runs(
    sources: Iterable[Source],
    filters: Filters,
    on_problem: ProblemSink,
    follow_symlinks: bool = False,
    stats: ScanStats | None = None,
) -> Iterator[list[Entry]]:
    """``walk``'s entries in the same order, a run of one folder's files at a time (at most
    ``RUN_FILES``): a million-file rerun then costs a generator step per folder, not per file.
    ``stats`` counts a run's files when it is yielded."""
    st = stats if stats is not None else ScanStats()
    for source in sources:
        yield from _walk(source, filters, on_problem, follow_symlinks, st)


def to_local_file(entry: Entry) -> LocalFile:
    full, rel, info, src = entry
    return LocalFile(
        path=full,
        root=src.base,
        rel_path=rel,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        atime_ns=info.st_atime_ns,
        birthtime_ns=_birthtime_ns(info),
        inode=info.st_ino,
        dev=info.st_dev,
        base_given=src.base_given,
    )


def _rel(path: str, base: str) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def _walk(
    src: Source, filters: Filters, on_problem: ProblemSink, follow: bool, st: ScanStats
) -> Iterator[list[Entry]]:
    try:
        top = os.stat(src.root)
    except OSError as exc:
        raise SourceMissing(f"{src.root}: {exc.strerror}") from None
    ancestors: list[tuple[int, int]] = [(top.st_dev, top.st_ino)]
    root_rel = _rel(src.root, src.base)
    prefix = "" if root_rel == "." else root_rel + "/"
    walker = _Walker(src, filters, on_problem, follow, st, ancestors, len(prefix))
    yield from walker.walk_dir(src.root, prefix)


#: A folder's entry, stat'ed: (sort name, name, its os.stat_result, or the OSError of its
#: stat, or None for a symlink that is not followed). Typed Any: the walk tells the three
#: apart by trying ``st_mode``, the cheapest test for the common case.
_Listed = tuple[str, str, Any]


def _sorted_entries(path: str, follow: bool) -> list[_Listed]:
    """The folder's entries, each stat'ed once, relative to the open folder (no path
    lookup per entry); the folder is closed before any entry is used."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        entries: list[_Listed] = []
        append = entries.append
        with os.scandir(fd) as it:
            if follow:
                for e in it:
                    name = e.name
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    try:
                        info: Any = e.stat()
                    except OSError as exc:
                        info = exc
                    append((name + "/" if is_dir else name, name, info))
            else:
                for e in it:
                    name = e.name
                    try:
                        if e.is_symlink():  # not followed: no stat, sorted as a file
                            append((name, name, None))
                            continue
                        # not a symlink: is_dir() and stat() need not be told not to follow
                        append((name + "/" if e.is_dir() else name, name, e.stat()))
                    except OSError as exc:
                        append((name, name, exc))
    finally:
        os.close(fd)
    entries.sort(key=_sort_name)  # no two sort names are equal; strings alone sort faster
    return entries


_sort_name = itemgetter(0)


def _nfc_clash(entries: list[_Listed]) -> bool:
    names = {unicodedata.normalize("NFC", e[1]) for e in entries}
    return len(names) < len(entries)


class _Walker:
    """One source's walk. Relative paths are built by joining names as it descends (no
    relpath per entry); filters that are empty cost nothing per entry."""

    def __init__(
        self,
        src: Source,
        filters: Filters,
        on_problem: ProblemSink,
        follow: bool,
        st: ScanStats,
        ancestors: list[tuple[int, int]],
        root_offset: int,
    ) -> None:
        self.src, self.filters, self.on_problem = src, filters, on_problem
        self.follow, self.st, self.ancestors = follow, st, ancestors
        #: rel_path[root_offset:] is the path relative to the source's root (for its pattern)
        self.root_offset = root_offset
        self.skip_names = filters.skip_names
        self.skips_path = filters.skips_path if filters.skip_paths else None
        self.keeps_file = filters.keeps_file if filters.include or filters.exclude else None
        self.prunes_dir = filters.prunes_dir if filters.exclude else None

    def walk_dir(self, path: str, rel_prefix: str) -> Iterator[list[Entry]]:
        src, st, follow, on_problem = self.src, self.st, self.follow, self.on_problem
        try:
            entries = _sorted_entries(path, follow)
        except OSError as exc:
            st.problems += 1
            on_problem(Problem(path, f"cannot read folder: {exc.strerror or exc}", fails=True))
            return
        st.dirs += 1
        if not "".join(e[1] for e in entries).isascii() and _nfc_clash(entries):
            st.nfc_clashes += 1
        skip_names, skips_path, keeps_file = self.skip_names, self.skips_path, self.keeps_file
        pattern, offset = src.pattern, self.root_offset
        s_isreg, s_isdir = stat_mod.S_ISREG, stat_mod.S_ISDIR
        parent = path if path.endswith("/") else path + "/"
        run: list[Entry] = []
        run_bytes = 0
        for _, name, info in entries:
            full = parent + name
            if (skip_names and name in skip_names) or (skips_path and skips_path(full)):
                continue
            try:
                mode = info.st_mode
            except AttributeError:  # a symlink not followed (None), or the error of its stat
                if info is None:
                    st.symlinks_skipped += 1
                    continue
                st.problems += 1
                what = "broken symlink" if os.path.islink(full) else "cannot stat"
                on_problem(Problem(full, f"{what}: {info.strerror or info}", fails=True))
                continue
            if s_isreg(mode):
                rel = rel_prefix + name
                if pattern is not None and not pattern.match(rel[offset:]):
                    continue
                if keeps_file is not None and not keeps_file(rel):
                    continue
                run.append((full, rel, info, src))
                run_bytes += info.st_size
                if len(run) >= RUN_FILES:
                    st.files += len(run)
                    st.bytes += run_bytes
                    yield run
                    run, run_bytes = [], 0
                continue
            if s_isdir(mode):
                rel = rel_prefix + name
                if src.single_file or (self.prunes_dir and self.prunes_dir(rel)):
                    continue
                ident = (info.st_dev, info.st_ino)
                if ident in self.ancestors:
                    st.problems += 1
                    on_problem(
                        Problem(full, "symlink loop: this folder is its own ancestor; skipped")
                    )
                    continue
                if run:  # the files before this folder go first, in order
                    st.files += len(run)
                    st.bytes += run_bytes
                    yield run
                    run, run_bytes = [], 0
                self.ancestors.append(ident)
                yield from self.walk_dir(full, rel + "/")
                self.ancestors.pop()
                continue
            st.special_skipped += 1
            kind = _SPECIAL.get(stat_mod.S_IFMT(mode), "not a regular file")
            on_problem(Problem(full, f"skipped: {kind}"))
        if run:
            st.files += len(run)
            st.bytes += run_bytes
            yield run


def _birthtime_ns(info: os.stat_result) -> int | None:
    birth = getattr(info, "st_birthtime_ns", None)
    if birth is None:
        b = getattr(info, "st_birthtime", None)
        birth = int(b * 1_000_000_000) if b is not None else None
    return int(birth) if birth is not None else None
