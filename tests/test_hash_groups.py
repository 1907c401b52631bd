"""Planning hashes files a group at a time: small files together on the planning thread,
larger ones spread over the pool, every hash in the order of the files, and a file that cannot
be read is a problem in its place."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hoard import push
from hoard.hashing import hash_file
from hoard.model import LocalFile, Problem


def local(path: Path) -> LocalFile:
    st = path.stat()
    return LocalFile(
        str(path), str(path.parent), path.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
        st.st_atime_ns, None, st.st_ino, st.st_dev,
    )  # fmt: skip


@pytest.fixture
def threads_seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """path -> name of the thread that hashed it."""
    seen: dict[str, str] = {}

    def watched(path: str, algorithm: str = "blake3", size_hint: int = 0) -> str:
        seen[path] = threading.current_thread().name
        return hash_file(path, algorithm, size_hint)

    monkeypatch.setattr(push, "hash_file", watched)
    return seen


def test_a_batch_of_small_files_is_hashed_on_the_planning_thread(
    tmp_path: Path, threads_seen: dict[str, str]
) -> None:
    files = []
    for i in range(40):
        (tmp_path / f"f{i:02d}").write_bytes(os.urandom(i * 7))
        files.append(local(tmp_path / f"f{i:02d}"))
    with ThreadPoolExecutor(4, thread_name_prefix="pool") as pool:
        got = list(push._hash_all(pool, files, "blake3"))
    assert got == [hash_file(f.path) for f in files]
    assert set(threads_seen.values()) == {threading.current_thread().name}


def test_larger_files_spread_over_the_pool_in_order_and_a_lost_file_is_a_problem_in_place(
    tmp_path: Path, threads_seen: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push, "HASH_GROUP_BYTES", 1000)
    sizes = [10, 2000, 300, 300, 500, 10, 1500, 0, 999, 1]
    files = []
    for i, size in enumerate(sizes):
        (tmp_path / f"f{i}").write_bytes(os.urandom(size))
        files.append(local(tmp_path / f"f{i}"))
    (tmp_path / "f5").unlink()  # vanished between the scan and its hash
    with ThreadPoolExecutor(4, thread_name_prefix="pool") as pool:
        got = list(push._hash_all(pool, files, "blake3"))
    assert len(got) == len(files)
    for f, h in zip(files, got, strict=True):
        if f.rel_path == "f5":
            assert isinstance(h, Problem) and h.fails and h.path == f.path
            assert "cannot read" in h.message
        else:
            assert h == hash_file(f.path)
    # groups of at least 1,000 bytes: [10, 2000], [300, 300, 500], [10, 1500], [0, 999, 1]
    assert all(name.startswith("pool") for name in threads_seen.values())
    groups = [("f0", "f1"), ("f2", "f3", "f4"), ("f6",), ("f7", "f8", "f9")]
    for group in groups:
        names = {threads_seen[str(tmp_path / n)] for n in group}
        assert len(names) == 1, group  # one task each


@pytest.mark.parametrize("hint", [1, 4096, 4097, 5000, 0, (1 << 20) + 1])
def test_a_file_hashes_the_same_whatever_size_it_was_measured_at(
    tmp_path: Path, hint: int
) -> None:
    """A small file is read whole rather than into a chunk-sized buffer; one that grew or
    shrank since it was measured still hashes every byte it holds."""
    import blake3

    data = os.urandom(4097)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(str(path), "blake3", hint) == "blake3:" + blake3.blake3(data).hexdigest()
