"""``transfer.execute`` reads the plan's uploads lazily (a plan streams them from disk), and
still counts every upload a stop or a run-stopping error left unattempted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.errors import Unreachable
from hoard.hashing import hash_file
from hoard.model import Action, LocalFile
from hoard.plan import decide
from hoard.report import NullReporter
from hoard.transfer import TransferStats, execute
from tests.conftest import make_tree

FILES = 300


def _uploads(root: Path, files: int = FILES) -> list[Action]:
    make_tree(root, {f"f{i:03d}": str(i) for i in range(files)})
    out = []
    for p in sorted(root.iterdir()):
        st = p.stat()
        f = LocalFile(
            str(p), str(root), p.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            st.st_atime_ns, None, st.st_ino, st.st_dev,
        )  # fmt: skip
        out.append(decide(f, p.name, hash_file(str(p)), None))
    return out


class _Counted:
    """The uploads, counting how many were read."""

    def __init__(self, actions: list[Action]) -> None:
        self.actions, self.read = actions, 0

    def __iter__(self) -> Iterator[Action]:
        for a in self.actions:
            self.read += 1
            yield a


class _Puts:
    """A fault hook counting puts; ``then(count)`` runs at each, under a lock."""

    def __init__(self, then: object = None) -> None:
        self.count, self.lock = 0, threading.Lock()
        self.then = then

    def __call__(self, op: str, key: str) -> None:
        if op != "put":
            return
        with self.lock:
            self.count += 1
            if callable(self.then):
                self.then(self.count)


def _execute(
    uploads: _Counted | list[Action],
    mem: MemoryBackend,
    catalog: Catalog,
    workers: int,
    stop: threading.Event | None = None,
) -> TransferStats:
    job = catalog.start_job("push", {}, time.time_ns())
    return execute(
        ([a] for a in uploads), mem, catalog, lambda: job, None, workers, NullReporter(),
        time.time_ns, lambda a: None, stop,
    )  # fmt: skip


def test_uploads_are_read_only_a_little_ahead_of_the_transfers(
    tmp_path: Path, catalog: Catalog
) -> None:
    uploads = _Counted(_uploads(tmp_path / "src"))
    ahead: list[int] = []
    puts = _Puts(lambda n: ahead.append(uploads.read - n))
    st = _execute(uploads, MemoryBackend("lazy", faults=puts), catalog, workers=2)
    assert (st.uploaded, st.failed, puts.count) == (FILES, 0, FILES)
    assert max(ahead) <= 16, f"read up to {max(ahead)} uploads ahead of the transfers"


def test_a_stop_counts_every_upload_left_in_the_plan_as_not_attempted(
    tmp_path: Path, catalog: Catalog
) -> None:
    stop = threading.Event()
    uploads = _Counted(_uploads(tmp_path / "src"))
    puts = _Puts(lambda n: stop.set() if n == 50 else None)
    st = _execute(uploads, MemoryBackend("stop", faults=puts), catalog, workers=4, stop=stop)
    assert st.interrupted and st.stopped_by == "asked to stop"
    assert st.uploaded == puts.count and 50 <= puts.count <= 50 + 2 * 4
    assert st.not_attempted == FILES - puts.count and st.failed == st.not_attempted
    assert uploads.read == FILES


def test_a_run_stopping_error_counts_every_upload_left_in_the_plan(
    tmp_path: Path, catalog: Catalog
) -> None:
    def unreachable_after_50(n: int) -> None:
        if n > 50:
            raise Unreachable("connect to 127.0.0.1:9 refused")

    puts = _Puts(unreachable_after_50)
    st = _execute(_Counted(_uploads(tmp_path / "src")), MemoryBackend("down", faults=puts),
                  catalog, workers=4)  # fmt: skip
    assert "refused" in st.stopped_by and not st.interrupted
    assert st.uploaded == 50 and puts.count <= 50 + 2 * 4
    assert st.not_attempted == FILES - puts.count
    assert st.failed == FILES - 50  # the attempts refused, and the rest not attempted


def test_one_upload_starts_one_thread(tmp_path: Path, catalog: Catalog) -> None:
    seen: set[str] = set()

    def threads(n: int) -> None:
        seen.update(t.name for t in threading.enumerate() if t.name.startswith("hoard-upload"))

    st = _execute(_uploads(tmp_path / "src", 1), MemoryBackend("one", faults=_Puts(threads)),
                  catalog, workers=8)  # fmt: skip
    assert st.uploaded == 1 and len(seen) == 1
