"""Below the restore command: the in-order hash of a file written out of order (as parallel
ranges write it), and placing files through folders opened once."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

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


def writing(data: bytes) -> Callable[[int], None]:
    def write(fd: int) -> None:
        os.write(fd, data)

    return write


def test_a_symlink_planted_after_a_folder_was_opened_redirects_nothing(tmp_path: Path) -> None:
    from hoard.safepath import Folders, place

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folders = Folders()
    try:
        place(folders, str(out), "album/a.jpg", writing(b"a"), 10**18)
        (out / "album").rename(out / "moved")
        (out / "album").symlink_to(elsewhere)
        place(folders, str(out), "album/b.jpg", writing(b"b"), None)
    finally:
        folders.close()
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (out / "moved").iterdir()) == ["a.jpg", "b.jpg"]
    assert (out / "moved" / "a.jpg").stat().st_mtime_ns == 10**18
