"""The in-order hash of a file written out of order, as parallel ranges write it."""

from __future__ import annotations

import os
import random
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
