"""Below the restore command: the in-order hash of a file written out of order (as parallel
ranges write it), and placing files through folders opened once."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from hoard.fetch import InOrderHash
from hoard.hashing import hash_bytes


def test_a_file_written_in_any_order_hashes_like_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(3_000_001)
    pieces = [(off, data[off : off + 65_536]) for off in range(0, len(data), 65_536)]
    for seed in range(5):
        random.Random(seed).shuffle(pieces)
        fd = os.open(tmp_path / f"f{seed}", os.O_RDWR | os.O_CREAT)
        try:
            h = InOrderHash("blake3", fd)
            for off, piece in pieces:
                os.pwrite(fd, piece, off)
                h.wrote(off, piece)
            assert h.frontier == len(data)
            assert h.hexdigest() == hash_bytes(data)
        finally:
            os.close(fd)


def test_ranges_written_by_many_threads_at_once_hash_like_the_file(tmp_path: Path) -> None:
    """As parallel ranges write: several threads, each writing its range chunk by chunk."""
    import threading

    data = os.urandom(2_000_003)
    ranges = [(off, min(250_000, len(data) - off)) for off in range(0, len(data), 250_000)]
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        h = InOrderHash("blake3", fd, len(data), writeback=True)
        start = threading.Barrier(len(ranges))

        def write(off: int, length: int) -> None:
            start.wait()
            for at in range(off, off + length, 7_001):
                piece = data[at : min(at + 7_001, off + length)]
                os.pwrite(fd, piece, at)
                h.wrote(at, piece)

        threads = [threading.Thread(target=write, args=r) for r in reversed(ranges)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert h.frontier == len(data)
        assert h.hexdigest() == hash_bytes(data)
    finally:
        os.close(fd)


def test_writeback_is_asked_for_in_order_without_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hoard import fetch

    handed: list[tuple[int, int]] = []
    monkeypatch.setattr(fetch, "start_writeback", lambda fd, off, n: handed.append((off, n)))
    data = os.urandom(3 * fetch.WRITEBACK_BYTES + 11)
    pieces = [(off, data[off : off + (1 << 20)]) for off in range(0, len(data), 1 << 20)]
    random.Random(7).shuffle(pieces)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        h = InOrderHash("blake3", fd, len(data), writeback=True)
        for off, piece in pieces:
            os.pwrite(fd, piece, off)
            h.wrote(off, piece)
        assert h.hexdigest() == hash_bytes(data)
    finally:
        os.close(fd)
    assert handed[0][0] == 0 and all(n >= fetch.WRITEBACK_BYTES for _, n in handed)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(handed))
    assert handed[-1][0] + handed[-1][1] >= 3 * fetch.WRITEBACK_BYTES


def writing(data: bytes) -> Callable[[int], None]:
    def write(fd: int) -> None:
        os.write(fd, data)

    return write


def test_a_symlink_planted_after_a_folder_was_opened_redirects_nothing(tmp_path: Path) -> None:
    from hoard.safepath import Folders, stage

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folders = Folders()
    try:
        assert folders.commit([stage(folders, str(out), "album/a.jpg", writing(b"a"), 10**18)]) == [
            None
        ]
        (out / "album").rename(out / "moved")
        (out / "album").symlink_to(elsewhere)
        b = stage(folders, str(out), "album/b.jpg", writing(b"b"), None)
        assert folders.commit([b]) == [None]
    finally:
        folders.close()
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (out / "moved").iterdir()) == ["a.jpg", "b.jpg"]
    assert (out / "moved" / "a.jpg").stat().st_mtime_ns == 10**18


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_staged_files_get_their_names_only_when_committed(tmp_path: Path, syncfs: bool) -> None:
    from hoard.safepath import TEMP_SUFFIX, Folders, stage

    out = tmp_path / "out"
    folders = Folders()
    folders.batch_durable &= syncfs  # False: as where syncfs does not exist (fsync per file)
    try:
        staged = [
            stage(folders, str(out), f"d{i % 3}/f{i}.txt", writing(b"x" * i), None)
            for i in range(9)
        ]
        assert not list(out.rglob("f*.txt"))  # only temporary names so far
        assert len(list(out.rglob(f"*{TEMP_SUFFIX}"))) == 9
        (out / "d1" / f".f4.txt{TEMP_SUFFIX}").unlink()  # lost meanwhile: that file fails
        errors = folders.commit(staged)
    finally:
        folders.close()
    assert [type(e).__name__ for e in errors if e] == ["FileNotFoundError"]
    assert errors[4] is not None
    assert sorted(p.name for p in out.rglob("f*.txt")) == sorted(
        f"f{i}.txt" for i in range(9) if i != 4
    )
    assert all((out / f"d{i % 3}" / f"f{i}.txt").read_bytes() == b"x" * i for i in (0, 5, 7))
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))


def test_long_names_get_distinct_temporary_names_within_the_name_limit(tmp_path: Path) -> None:
    from hoard.safepath import Folders, stage, temp_name

    a, b = "a" + "é" * 120 + ".jpg", "b" + "é" * 120 + ".jpg"  # 246 bytes each, one suffix
    assert temp_name(a) != temp_name(b)
    assert all(len(os.fsencode(temp_name(n))) <= 255 for n in (a, b))
    assert temp_name("short.jpg") == ".short.jpg.hoard-part"
    folders = Folders()
    try:
        staged = [stage(folders, str(tmp_path), n, writing(n.encode()), None) for n in (a, b)]
        assert folders.commit(staged) == [None, None]
    finally:
        folders.close()
    assert (tmp_path / a).read_bytes() == a.encode() and (tmp_path / b).read_bytes() == b.encode()


@pytest.mark.parametrize("how", ["no-syncfs", "untrusted-fs"])
def test_a_batch_over_more_folders_than_stay_open_is_placed_whole(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders closed between staging and the commit's fsync of each are reopened, not lost
    (a batch spread over more folders than ``limit``, on the fsync-each path)."""
    from hoard import durable
    from hoard.safepath import Folders, stage

    if how == "untrusted-fs":  # e.g. a FUSE mount: syncfs there does not write files out
        monkeypatch.setattr(durable, "TRUSTED_TYPES", frozenset())
    out = tmp_path / "out"
    folders = Folders(limit=2)
    if how == "no-syncfs":
        folders.batch_durable = False
    try:
        staged = [
            stage(folders, str(out), f"y/m{i:02}/f{i}.jpg", writing(b"p" * i), None)
            for i in range(12)
        ]
        assert all(s.durable for s in staged)  # each fsynced when staged: no syncfs to trust
        assert folders.commit(staged) == [None] * 12
    finally:
        folders.close()
    assert sorted(p.name for p in out.rglob("f*.jpg")) == sorted(f"f{i}.jpg" for i in range(12))


def test_syncfs_is_trusted_only_on_local_file_systems_it_writes_out(tmp_path: Path) -> None:
    from hoard import durable

    fd = os.open(tmp_path, os.O_RDONLY)
    proc = os.open("/proc", os.O_RDONLY)
    try:
        kind = durable.fs_type(os.fstat(fd).st_dev)
        assert kind is not None  # found in /proc/self/mountinfo
        assert durable.trusted(fd) == (
            kind in durable.TRUSTED_TYPES
            and durable.available()
            and durable._kernel_reports_errors()
        )
        assert durable.fs_type(os.fstat(proc).st_dev) == "proc" and not durable.trusted(proc)
    finally:
        os.close(fd)
        os.close(proc)
