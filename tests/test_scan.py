"""hoard.scan: sources, filters and the lazy, sorted walk that yields LocalFile."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import hoard.scan
from hoard.errors import SourceMissing, UsageError
from hoard.model import LocalFile, Problem
from hoard.scan import Filters, ScanStats, Source, scan


def make_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class Result:
    def __init__(self) -> None:
        self.files: list[LocalFile] = []
        self.problems: list[Problem] = []
        self.stats = ScanStats()

    @property
    def rels(self) -> list[str]:
        return [f.rel_path for f in self.files]


def run(
    *sources: Source, filters: Filters | None = None, follow_symlinks: bool = False
) -> Result:
    res = Result()
    res.files = list(
        scan(
            sources,
            filters or Filters(),
            res.problems.append,
            follow_symlinks=follow_symlinks,
            stats=res.stats,
        )
    )
    return res


def byte_order(rels: list[str]) -> list[str]:
    return sorted(rels, key=lambda r: r.encode("utf-8"))


@pytest.fixture
def scandir_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every folder the scan lists (hoard.scan opens each folder it lists once)."""
    calls: list[str] = []
    real = os.open

    def recording(path: str, flags: int, *args: int, **kw: int) -> int:
        if flags & os.O_DIRECTORY:
            calls.append(os.fspath(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(hoard.scan.os, "open", recording)
    return calls


def failing_scandir(monkeypatch: pytest.MonkeyPatch, bad: Path) -> Callable[..., int]:
    """Make the folder ``bad`` unreadable (as root, chmod would not): opening it fails."""
    real = os.open

    def fake(path: str, flags: int, *args: int, **kw: int) -> int:
        if flags & os.O_DIRECTORY and os.fspath(path) == str(bad):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(hoard.scan.os, "open", fake)
    return fake


# --- folder sources -------------------------------------------------------------------------


def test_folder_source_yields_every_regular_file_relative_to_folder(tmp_path: Path) -> None:
    root = make_files(
        tmp_path / "src",
        {"a.txt": "1", "sub/b.txt": "22", "sub/deeper/c.bin": "333", ".hidden": "4"},
    )
    res = run(Source.parse(str(root)))
    assert sorted(res.rels) == [".hidden", "a.txt", "sub/b.txt", "sub/deeper/c.bin"]
    for f in res.files:
        assert f.root == str(root)
        assert f.source == str(root)
        assert f.path == str(root / f.rel_path)
        assert f.base_given is True
    assert res.problems == []
    assert res.stats.files == 4
    assert res.stats.bytes == 1 + 2 + 3 + 1
    assert res.stats.dirs == 3  # src, sub, sub/deeper


def test_folder_source_is_sorted_in_object_key_byte_order(tmp_path: Path) -> None:
    names = ["a-c", "a/b", "a.txt", "a0", "a/a/z", "A", "b", "é", "z/y/x", "Z", "_u", "a b"]
    root = make_files(tmp_path / "src", {n: n for n in names})
    rels = run(Source.parse(str(root))).rels
    assert sorted(rels) == sorted(names)
    assert rels == byte_order(names)
    # The folder "a" sorts as "a/", after the file "a-c" ('-' < '/') and before "a0".
    assert rels.index("a-c") < rels.index("a/a/z") < rels.index("a/b") < rels.index("a0")


def test_empty_folder_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    res = run(Source.parse(str(tmp_path / "empty")))
    assert res.files == []
    assert res.problems == []
    assert res.stats.dirs == 2


def test_folder_source_with_base_measures_rel_path_from_base(tmp_path: Path) -> None:
    make_files(tmp_path, {"home/pics/2020/a.jpg": "x", "home/other.txt": "y"})
    src = Source.parse(str(tmp_path / "home" / "pics"), base=str(tmp_path / "home"))
    res = run(src)
    assert res.rels == ["pics/2020/a.jpg"]
    assert res.files[0].root == str(tmp_path / "home")
    assert res.files[0].base_given is True


def test_relative_source_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_files(tmp_path, {"d/a.txt": "x"})
    monkeypatch.chdir(tmp_path)
    src = Source.parse("d")
    assert src.root == str(tmp_path / "d")
    assert run(src).files[0].path == str(tmp_path / "d" / "a.txt")


# --- pattern sources ------------------------------------------------------------------------


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    return make_files(
        tmp_path / "root" / "Videos",
        {
            "top.mp4": "1",
            "trip/b.mov": "2",
            "trip/day1/c.mp4": "3",
            "trip/notes.txt": "4",
            "x.MP4": "5",
            "a.mp4.bak": "6",
        },
    )


def test_pattern_source_without_base_is_relative_to_literal_root(videos: Path) -> None:
    src = Source.parse(f"{videos}/**/*.{{mp4,mov}}")
    assert src.root == str(videos)
    assert src.base == str(videos)
    assert src.base_given is False
    res = run(src)
    assert res.rels == ["top.mp4", "trip/b.mov", "trip/day1/c.mp4"]
    for f in res.files:
        assert f.root == str(videos)
        assert f.base_given is False
        assert f.path == str(videos / f.rel_path)


def test_pattern_source_with_base_is_relative_to_base(videos: Path) -> None:
    base = videos.parent
    src = Source.parse(f"{videos}/**/*.{{mp4,mov}}", base=str(base))
    assert src.base_given is True
    res = run(src)
    assert res.rels == ["Videos/top.mp4", "Videos/trip/b.mov", "Videos/trip/day1/c.mp4"]
    for f in res.files:
        assert f.root == str(base)
        assert f.base_given is True


def test_pattern_source_is_anchored_at_its_root(videos: Path) -> None:
    # `*.mp4` after the root matches only files directly in it (a path pattern, not a name).
    assert run(Source.parse(f"{videos}/*.mp4")).rels == ["top.mp4"]
    assert run(Source.parse(f"{videos}/*/*.mov")).rels == ["trip/b.mov"]


def test_pattern_with_glob_in_folder_part(tmp_path: Path) -> None:
    root = make_files(
        tmp_path, {"logs/2023-01/a.gz": "1", "logs/2023-02/b.gz": "2", "logs/2024-01/c.gz": "3"}
    )
    src = Source.parse(f"{root}/logs/2023-*/*.gz")
    assert src.root == str(root / "logs")
    assert run(src).rels == ["2023-01/a.gz", "2023-02/b.gz"]


def test_pattern_source_with_unclosed_brace_is_usage_error(videos: Path) -> None:
    with pytest.raises(UsageError, match="unclosed"):
        Source.parse(f"{videos}/*.{{mp4,mov")


def test_pattern_source_outside_its_base_is_usage_error(tmp_path: Path, videos: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(UsageError, match="not inside") as info:
        Source.parse(f"{videos}/**/*.mp4", base=str(elsewhere))
    assert not isinstance(info.value, SourceMissing)


def test_folder_and_file_sources_outside_base_are_usage_errors(tmp_path: Path) -> None:
    make_files(tmp_path, {"a/f.txt": "x", "b/g.txt": "y", "ab/h.txt": "z"})
    with pytest.raises(UsageError, match="not inside"):
        Source.parse(str(tmp_path / "a"), base=str(tmp_path / "b"))
    with pytest.raises(UsageError, match="not inside"):
        Source.parse(str(tmp_path / "a" / "f.txt"), base=str(tmp_path / "b"))
    # A sibling sharing a name prefix is not "inside" (path components, not string prefix).
    with pytest.raises(UsageError, match="not inside"):
        Source.parse(str(tmp_path / "ab"), base=str(tmp_path / "a"))


# --- single files ---------------------------------------------------------------------------


def test_single_file_source_yields_only_that_file(tmp_path: Path) -> None:
    make_files(tmp_path, {"d/x.txt": "1", "d/y.txt": "2", "d/sub/x.txt": "3"})
    src = Source.parse(str(tmp_path / "d" / "x.txt"))
    assert src.single_file
    res = run(src)
    assert [f.path for f in res.files] == [str(tmp_path / "d" / "x.txt")]
    assert res.rels == ["x.txt"]
    assert res.files[0].root == str(tmp_path / "d")
    assert res.files[0].base_given is False


def test_single_file_source_with_base(tmp_path: Path) -> None:
    make_files(tmp_path, {"d/e/x.txt": "1"})
    res = run(Source.parse(str(tmp_path / "d" / "e" / "x.txt"), base=str(tmp_path / "d")))
    assert res.rels == ["e/x.txt"]
    assert res.files[0].base_given is True
    assert res.files[0].root == str(tmp_path / "d")


def test_single_file_with_brace_bracket_and_comma_in_name(tmp_path: Path) -> None:
    name = "take],1}.txt"
    make_files(tmp_path, {f"d/{name}": "1", "d/take.txt": "2", "d/t.txt": "3"})
    assert run(Source.parse(str(tmp_path / "d" / name))).rels == [name]


def test_single_file_with_surrounding_spaces_in_name(tmp_path: Path) -> None:
    make_files(tmp_path, {"d/ a.txt": "wanted", "d/a.txt": "other"})
    res = run(Source.parse(str(tmp_path / "d" / " a.txt")))
    assert [f.path for f in res.files] == [str(tmp_path / "d" / " a.txt")]


# --- ~ expansion and missing paths ----------------------------------------------------------


def test_tilde_is_expanded_in_sources_and_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_files(tmp_path / "home", {"photos/a.jpg": "1", "photos/b.png": "2"})
    monkeypatch.setenv("HOME", str(home))
    folder = Source.parse("~/photos")
    assert folder.root == str(home / "photos")
    assert run(folder).rels == ["a.jpg", "b.png"]
    pattern = Source.parse("~/photos/*.jpg", base="~")
    assert pattern.root == str(home / "photos")
    assert pattern.base == str(home)
    assert run(pattern).rels == ["photos/a.jpg"]
    single = Source.parse("~/photos/b.png")
    assert run(single).files[0].path == str(home / "photos" / "b.png")


def test_tilde_is_expanded_in_skip_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_files(tmp_path / "home", {"a/keep.txt": "1", "a/skip/x.txt": "2"})
    monkeypatch.setenv("HOME", str(home))
    res = run(Source.parse("~/a"), filters=Filters.build(skip_paths=["~/a/skip/"]))
    assert res.rels == ["keep.txt"]


@pytest.mark.parametrize(
    "make_spec",
    [
        lambda p: str(p / "nope"),
        lambda p: str(p / "nope" / "file.txt"),
        lambda p: f"{p}/nope/**/*.mp4",
    ],
    ids=["folder", "file", "pattern-root"],
)
def test_missing_source_raises_source_missing(
    tmp_path: Path, make_spec: Callable[[Path], str]
) -> None:
    with pytest.raises(SourceMissing):
        Source.parse(make_spec(tmp_path))


def test_missing_base_raises_source_missing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceMissing, match="base"):
        Source.parse(str(tmp_path / "d"), base=str(tmp_path / "no-base"))


def test_source_removed_before_scan_raises_source_missing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    src = Source.parse(str(tmp_path / "d"))
    (tmp_path / "d").rmdir()
    with pytest.raises(SourceMissing):
        run(src)


# --- include / exclude / skip -------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return make_files(
        tmp_path / "m",
        {
            "a.jpg": "1",
            "a.tmp": "2",
            "docs/b.jpg": "3",
            "docs/c.txt": "4",
            "docs/deep/d.jpg": "5",
            "raw/e.jpg": "6",
        },
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters.build(include=["*.jpg"]), ["a.jpg", "docs/b.jpg", "docs/deep/d.jpg", "raw/e.jpg"]),
        (Filters.build(include=["docs/*.jpg"]), ["docs/b.jpg"]),
        (Filters.build(include=["docs/**"]), ["docs/b.jpg", "docs/c.txt", "docs/deep/d.jpg"]),
        (Filters.build(include=["*.tmp", "*.txt"]), ["a.tmp", "docs/c.txt"]),
        (Filters.build(exclude=["*.tmp"]), ["a.jpg", "docs/b.jpg", "docs/c.txt",
                                             "docs/deep/d.jpg", "raw/e.jpg"]),
        (Filters.build(exclude=["docs/*.jpg"]), ["a.jpg", "a.tmp", "docs/c.txt",
                                                  "docs/deep/d.jpg", "raw/e.jpg"]),
        (Filters.build(include=["*.jpg"], exclude=["raw/**", "docs/deep/*"]),
         ["a.jpg", "docs/b.jpg"]),
    ],
    ids=["inc-name", "inc-path", "inc-dir", "inc-two", "exc-name", "exc-path", "exc-wins"],
)
def test_include_and_exclude(mixed: Path, filters: Filters, expected: list[str]) -> None:
    assert run(Source.parse(str(mixed)), filters=filters).rels == expected


def test_filters_are_relative_to_the_base(mixed: Path) -> None:
    src = Source.parse(str(mixed / "docs"), base=str(mixed))
    res = run(src, filters=Filters.build(include=["docs/*.jpg"]))
    assert res.rels == ["docs/b.jpg"]


def test_filters_with_unclosed_brace_are_usage_error() -> None:
    with pytest.raises(UsageError):
        Filters.build(include=["*.{jpg"])
    with pytest.raises(UsageError):
        Filters.build(exclude=["{a,b"])


def test_excluded_folders_are_pruned_not_listed(
    mixed: Path, scandir_calls: list[str]
) -> None:
    make_files(mixed, {"docs/.thumbnails/t.jpg": "t", ".git/config": "c", "x/.git/HEAD": "h"})
    res = run(
        Source.parse(str(mixed)), filters=Filters.build(exclude=["**/.thumbnails/**", ".git"])
    )
    assert res.rels == [
        "a.jpg", "a.tmp", "docs/b.jpg", "docs/c.txt", "docs/deep/d.jpg", "raw/e.jpg"
    ]
    listed = {os.path.relpath(p, mixed) for p in scandir_calls}
    assert listed == {".", "docs", "docs/deep", "raw", "x"}
    assert res.stats.dirs == 5


def test_pruned_folder_is_never_read(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(mixed, {"cache/c.bin": "c"})
    failing_scandir(monkeypatch, mixed / "cache")
    res = run(Source.parse(str(mixed)), filters=Filters.build(exclude=["cache/**"]))
    assert res.problems == []  # an unreadable folder would have been reported
    assert "cache/c.bin" not in res.rels
    assert "raw/e.jpg" in res.rels


def test_excluding_files_by_name_does_not_prune_other_folders(
    mixed: Path, scandir_calls: list[str]
) -> None:
    run(Source.parse(str(mixed)), filters=Filters.build(exclude=["*.jpg"]))
    listed = {os.path.relpath(p, mixed) for p in scandir_calls}
    assert listed == {".", "docs", "docs/deep", "raw"}


def test_anchored_folder_exclude_keeps_nested_folder_of_same_name(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"cache/a": "1", "src/cache/b": "2", "src/c": "3"})
    res = run(Source.parse(str(root)), filters=Filters.build(exclude=["cache/**"]))
    assert res.rels == ["src/c", "src/cache/b"]


def test_skip_names_skip_files_and_folders_at_any_depth(
    mixed: Path, scandir_calls: list[str]
) -> None:
    make_files(mixed, {".DS_Store": "x", "docs/.DS_Store": "y", "docs/@eaDir/thumb": "z"})
    res = run(Source.parse(str(mixed)), filters=Filters.build(skip_names=[".DS_Store", "@eaDir"]))
    assert not any(r.endswith(".DS_Store") or "@eaDir" in r for r in res.rels)
    assert "docs/c.txt" in res.rels
    assert str(mixed / "docs" / "@eaDir") not in scandir_calls


def test_skip_names_match_whole_names_only(mixed: Path) -> None:
    res = run(Source.parse(str(mixed)), filters=Filters.build(skip_names=["a", "*.jpg"]))
    assert "a.jpg" in res.rels
    assert len(res.rels) == 6


def test_skip_paths_skip_absolute_files_and_folders(
    mixed: Path, scandir_calls: list[str]
) -> None:
    make_files(mixed, {"docsx/f.txt": "f"})
    filters = Filters.build(skip_paths=[str(mixed / "docs"), str(mixed / "a.tmp")])
    res = run(Source.parse(str(mixed)), filters=filters)
    # "docsx" shares a prefix with "docs" but is not under it.
    assert res.rels == ["a.jpg", "docsx/f.txt", "raw/e.jpg"]
    assert str(mixed / "docs") not in scandir_calls


# --- symlinks -------------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    root = make_files(tmp_path / "r", {"real/x.txt": "x", "f.txt": "f"})
    outside = make_files(tmp_path / "outside", {"o.txt": "o"})
    (root / "link-file").symlink_to(root / "f.txt")
    (root / "link-dir").symlink_to(outside)
    return root


def test_symlinks_are_skipped_by_default(linked: Path) -> None:
    res = run(Source.parse(str(linked)))
    assert res.rels == ["f.txt", "real/x.txt"]
    assert res.stats.symlinks_skipped == 2
    assert res.problems == []


def test_symlinks_are_followed_when_asked(linked: Path) -> None:
    res = run(Source.parse(str(linked)), follow_symlinks=True)
    assert sorted(res.rels) == ["f.txt", "link-dir/o.txt", "link-file", "real/x.txt"]
    assert res.stats.symlinks_skipped == 0
    by_rel = {f.rel_path: f for f in res.files}
    # The link's target is stat'ed: same inode and size as the file it points to.
    target = os.stat(linked / "f.txt")
    assert by_rel["link-file"].inode == target.st_ino
    assert by_rel["link-file"].size == target.st_size
    assert by_rel["link-file"].path == str(linked / "link-file")
    assert by_rel["link-dir/o.txt"].path == str(linked / "link-dir" / "o.txt")


def test_followed_folder_symlink_keeps_object_key_order(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"real/x": "1", "a-c": "2"})
    (root / "a").symlink_to(root / "real")
    rels = run(Source.parse(str(root)), follow_symlinks=True).rels
    assert rels == byte_order(rels)  # "a-c" < "a/x"


def test_symlink_loop_is_a_problem_and_scan_finishes(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"d/in.txt": "1", "z.txt": "2"})
    (root / "d" / "loop").symlink_to(root / "d")
    (root / "self").symlink_to(root)
    res = run(Source.parse(str(root)), follow_symlinks=True)
    assert res.rels == ["d/in.txt", "z.txt"]
    loops = {p.path: p for p in res.problems}
    assert set(loops) == {str(root / "d" / "loop"), str(root / "self")}
    for p in loops.values():
        assert "loop" in p.message
        assert p.fails is False
    assert res.stats.problems == 2


def test_broken_symlink(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"ok.txt": "1"})
    (root / "dangling").symlink_to(root / "missing")
    not_followed = run(Source.parse(str(root)))
    assert not_followed.rels == ["ok.txt"]
    assert not_followed.problems == []
    assert not_followed.stats.symlinks_skipped == 1

    followed = run(Source.parse(str(root)), follow_symlinks=True)
    assert followed.rels == ["ok.txt"]
    assert len(followed.problems) == 1
    problem = followed.problems[0]
    assert problem.path == str(root / "dangling")
    assert problem.fails is True
    assert "broken symlink" in problem.message
    assert followed.stats.problems == 1


# --- special files --------------------------------------------------------------------------


def test_fifo_and_socket_are_skipped_with_a_problem_each(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"a.txt": "1", "sub/z.txt": "2"})
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sub" / "sock"))
        res = run(Source.parse(str(root)))
    finally:
        sock.close()
    assert res.rels == ["a.txt", "sub/z.txt"]
    problems = {p.path: p for p in res.problems}
    assert set(problems) == {str(root / "pipe"), str(root / "sub" / "sock")}
    assert "FIFO" in problems[str(root / "pipe")].message
    assert "socket" in problems[str(root / "sub" / "sock")].message
    assert all(p.fails is False for p in res.problems)
    assert res.stats.special_skipped == 2
    assert res.stats.problems == 0  # special files are notes, not failures


# --- stat -----------------------------------------------------------------------------------


def test_local_file_carries_the_files_stat(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"a.bin": "x" * 1234, "d/b.bin": ""})
    os.utime(root / "a.bin", ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    res = run(Source.parse(str(root)))
    assert len(res.files) == 2
    for f in res.files:
        st = os.stat(f.path)
        assert f.size == st.st_size
        assert f.mtime_ns == st.st_mtime_ns
        assert f.ctime_ns == st.st_ctime_ns
        assert f.inode == st.st_ino
        assert f.dev == st.st_dev
    a = res.files[0]
    assert a.rel_path == "a.bin"
    assert a.size == 1234
    assert a.mtime_ns == 1_500_000_000_987_654_321
    assert a.atime_ns == 1_600_000_000_123_456_789
    assert a.created_ns <= a.ctime_ns


# --- laziness -------------------------------------------------------------------------------


def test_scan_is_lazy(tmp_path: Path, scandir_calls: list[str]) -> None:
    root = make_files(tmp_path / "r", {"aaa/1.txt": "1", "zzz/2.txt": "2"})
    it = scan([Source.parse(str(root))], Filters(), lambda p: None)
    assert iter(it) is it
    assert not isinstance(it, list | tuple)
    assert scandir_calls == []  # nothing is read before the first next()
    first = next(it)
    assert first.rel_path == "aaa/1.txt"
    # Only the root and "aaa" have been listed; "zzz" is read when the walk gets there.
    assert scandir_calls == [str(root), str(root / "aaa")]
    (root / "zzz" / "3.txt").write_text("added after the first file was taken")
    rest = [f.rel_path for f in it]
    assert rest == ["zzz/2.txt", "zzz/3.txt"]


# --- unreadable folders ---------------------------------------------------------------------


def test_unreadable_folder_is_a_failing_problem_and_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_files(tmp_path / "r", {"a/1.txt": "1", "b/2.txt": "2", "b/c/3.txt": "3",
                                        "c/4.txt": "4"})
    failing_scandir(monkeypatch, root / "b")
    res = run(Source.parse(str(root)))
    assert res.rels == ["a/1.txt", "c/4.txt"]
    assert len(res.problems) == 1
    problem = res.problems[0]
    assert problem.path == str(root / "b")
    assert problem.fails is True
    assert "Permission denied" in problem.message
    assert res.stats.problems == 1
    assert res.stats.dirs == 3  # root, a, c: b could not be listed


def test_unreadable_source_root_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_files(tmp_path / "r", {"a.txt": "1"})
    other = make_files(tmp_path / "o", {"b.txt": "2"})
    failing_scandir(monkeypatch, root)
    res = run(Source.parse(str(root)), Source.parse(str(other)))
    assert [f.path for f in res.files] == [str(other / "b.txt")]
    assert [(p.path, p.fails) for p in res.problems] == [(str(root), True)]


# --- several sources ------------------------------------------------------------------------


def test_sources_are_scanned_in_order_each_sorted(tmp_path: Path) -> None:
    one = make_files(tmp_path / "one", {"z.txt": "1", "a.txt": "2"})
    two = make_files(tmp_path / "two", {"m.txt": "3", "b.txt": "4"})
    res = run(Source.parse(str(two)), Source.parse(str(one)))
    assert [(f.root, f.rel_path) for f in res.files] == [
        (str(two), "b.txt"),
        (str(two), "m.txt"),
        (str(one), "a.txt"),
        (str(one), "z.txt"),
    ]
    assert res.stats.files == 4


def test_scan_without_stats_argument(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"a.txt": "1"})
    files = list(scan([Source.parse(str(root))], Filters(), lambda p: None))
    assert [f.rel_path for f in files] == ["a.txt"]


def test_existing_path_with_glob_characters_is_taken_literally(tmp_path: Path) -> None:
    root = make_files(tmp_path / "r", {"photo[1].jpg": "x", "photo1.jpg": "y",
                                       "{draft}/a.txt": "z"})
    res = run(Source.parse(str(root / "photo[1].jpg")))
    assert res.rels == ["photo[1].jpg"]
    res = run(Source.parse(str(root / "{draft}")))
    assert res.rels == ["a.txt"]


def test_walk_runs_are_one_folder_each_in_walk_order_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hoard.scan, "RUN_FILES", 3)
    names = [f"a/f{i}" for i in range(7)] + ["a/m/x", "a/n", "b/y", "c"]
    src = make_files(tmp_path / "src", dict.fromkeys(names, "data"))
    stats = ScanStats()
    seen: list[tuple[int, int]] = []  # (files counted, bytes counted) as each run arrives
    runs: list[list[str]] = []
    for run in hoard.scan.walk_runs([Source.parse(str(src))], Filters(), lambda p: None,
                                    stats=stats):
        runs.append([e[1] for e in run])
        seen.append((stats.files, stats.bytes))
    assert runs == [
        ["a/f0", "a/f1", "a/f2"], ["a/f3", "a/f4", "a/f5"], ["a/f6"],  # at most RUN_FILES
        ["a/m/x"], ["a/n"],  # the folder's files after m/ come after m's
        ["b/y"], ["c"],
    ]
    assert [r for run in runs for r in run] == [e[1] for e in hoard.scan.walk(
        [Source.parse(str(src))], Filters(), lambda p: None)] == sorted(names)
    assert seen == [(n, 4 * n) for n in (3, 6, 7, 8, 9, 10, 11)]  # counted when yielded
