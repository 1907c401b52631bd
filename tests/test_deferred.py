"""A backend opened on first use: opened once however many threads ask, never for a run that
sends nothing, and refused if it is not the store the catalog was told."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hoard.backends.base import Backend
from hoard.backends.deferred import Deferred
from hoard.backends.localfs import LocalBackend


def test_opened_once_by_many_threads_and_never_for_nothing(tmp_path: Path) -> None:
    opened: list[Backend] = []

    def opener() -> Backend:
        b = LocalBackend(str(tmp_path / "remote"))
        opened.append(b)
        return b

    idle = Deferred("file://" + str(tmp_path / "remote"), opener)
    idle.flush()
    idle.close()
    assert opened == [] and not idle.opened  # a no-change run opens nothing

    lazy = Deferred("file://" + str(tmp_path / "remote"), opener)
    src = tmp_path / "f.txt"
    src.write_text("x")
    start = threading.Barrier(8)

    def put(i: int) -> None:
        start.wait()
        lazy.put(f"k{i}", str(src), 1, {}, None)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lazy.flush()
    assert len(opened) == 1 and lazy.opened
    assert sorted(o.key for o in lazy.list()) == sorted(f"k{i}" for i in range(8))
    assert lazy.capabilities.scheme == "file"
    lazy.close()


def test_a_store_other_than_the_one_named_is_refused(tmp_path: Path) -> None:
    lazy = Deferred("file:///somewhere/else", lambda: LocalBackend(str(tmp_path / "remote")))
    with pytest.raises(AssertionError, match="opened for"):
        list(lazy.list())
