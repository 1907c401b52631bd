"""A push of one `{rel_path}` source uploads while it plans: the first batch's uploads start
before later batches are examined. Names equal in NFC hold back the files found after them;
a conflict among those refuses the rest, and says what was uploaded before it was found."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from hoard import push as push_mod
from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.console import push_json
from hoard.errors import KeyConflict, Unreachable
from hoard.hashing import hash_file
from hoard.push import PushSettings, run_push, streams
from hoard.report import NullReporter
from tests.conftest import make_tree

#: More than two planning batches (push.HASH_BATCH files each), in folders of 100.
FILES = 2 * push_mod.HASH_BATCH + 88


def _names(prefix: str = "") -> dict[str, bytes | str]:
    return {f"{prefix}d{i // 100}/f{i:04d}": str(i) for i in range(FILES)}


def _settings(src: Path, mem: MemoryBackend, **kw: object) -> PushSettings:
    return PushSettings(sources=(str(src),), remote=mem.url, workers=4,
                        **kw)  # type: ignore[arg-type]


def test_uploads_start_before_planning_reaches_the_last_file(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", _names())
    last = str(src / f"d{(FILES - 1) // 100}/f{FILES - 1:04d}")
    first_put = threading.Event()
    waited: list[bool] = []

    def hash_waiting(path: str, algorithm: str = "blake3", size_hint: int = 0) -> str:
        if path == last:  # planning the last batch: has an upload started yet?
            waited.append(first_put.wait(10))
        return hash_file(path, algorithm, size_hint)

    monkeypatch.setattr(push_mod, "hash_file", hash_waiting)
    mem = MemoryBackend("stream", faults=lambda op, key: first_put.set() if op == "put" else None)
    r = run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns)
    assert waited == [True], "no upload started until planning had examined every file"
    assert (r.outcome, r.counts()["uploaded"], len(mem.objects)) == ("ok", FILES, FILES)
    job = catalog.jobs()[0]
    assert (job["outcome"], job["uploaded"], job["scanned"]) == ("ok", FILES, FILES)
    assert r.plan.totals()["upload"] == FILES  # every streamed upload is counted


def test_other_templates_and_several_sources_plan_first() -> None:
    assert streams(PushSettings(sources=("a",), remote="r"))
    assert not streams(PushSettings(sources=("a",), remote="r", template="p/{filename}"))
    assert not streams(PushSettings(sources=("a", "b"), remote="r"))


def test_names_equal_in_nfc_refuse_only_what_follows_them(
    tmp_path: Path, catalog: Catalog
) -> None:
    files = _names("a/")
    files |= {"z/\u00e9.txt": "composed", "z/e\u0301.txt": "decomposed", "z/ok.txt": "ok"}
    src = make_tree(tmp_path / "src", files)
    mem = MemoryBackend("nfc-stream")
    with pytest.raises(KeyConflict) as err:
        run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns)
    message = str(err.value)
    assert str(src / "z/\u00e9.txt") in message and str(src / "z/e\u0301.txt") in message
    job = catalog.jobs()[0]
    assert f"the {FILES} files uploaded before" in message and f"(job {job['id']})" in message
    # a/ was planned and uploaded before the walk reached z/; nothing of z/ moved.
    assert sorted(mem.objects) == sorted(k for k in files if k.startswith("a/"))
    assert (job["outcome"], job["uploaded"]) == ("failed", FILES)
    assert all(mem.objects[k].data == str(v).encode() for k, v in files.items()
               if k.startswith("a/"))


def test_a_conflict_found_before_anything_moved_records_no_job(
    tmp_path: Path, catalog: Catalog
) -> None:
    src = make_tree(tmp_path / "src", {"z/\u00e9.txt": "composed", "z/e\u0301.txt": "other"})
    mem = MemoryBackend("nfc-first")
    with pytest.raises(KeyConflict) as err:
        run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns)
    assert "uploaded before" not in str(err.value)
    assert mem.objects == {} and catalog.jobs() == []


def test_a_stop_while_planning_ends_the_run_as_interrupted(
    tmp_path: Path, catalog: Catalog
) -> None:
    src = make_tree(tmp_path / "src", _names())
    stop = threading.Event()
    puts = [0]

    def stop_at_fifth(op: str, key: str) -> None:
        if op == "put":
            puts[0] += 1
            if puts[0] == 5:
                stop.set()

    mem = MemoryBackend("stop-stream", faults=stop_at_fifth)
    r = run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns, stop=stop)
    assert r.outcome == "interrupted" and r.transfer.interrupted
    assert 5 <= r.counts()["uploaded"] == len(mem.objects) < FILES
    assert r.transfer.unexamined and "not reached yet were not counted" in r.transfer.left_out()
    doc = json.loads(push_json(r, 1.0, with_actions=False))
    assert (doc["outcome"], doc["stopped_by"], doc["unexamined"]) == (
        "interrupted", "asked to stop", True)
    job = catalog.jobs()[0]
    assert (job["outcome"], job["uploaded"]) == ("interrupted", len(mem.objects))
    again = run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns)
    assert (again.outcome, len(mem.objects)) == ("ok", FILES)
    assert again.counts()["uploaded"] == FILES - r.counts()["uploaded"]


def test_uploads_that_stop_stop_planning_too(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun where only the first batch has changes: planning then feeds nothing for a
    long while (the rest is unchanged, though read again: touched). The store going away
    must still end planning at its next batch, not after it has examined (here: slowly
    hashed) the whole rest of the tree."""
    files: dict[str, bytes | str] = {f"a/f{i:04d}": str(i) for i in range(300)}
    files |= {f"c{i // 100}/f{i:04d}": str(i) for i in range(2000)}
    src = make_tree(tmp_path / "src", files)
    up = [True]

    def unreachable(op: str, key: str) -> None:
        if op == "put" and not up[0]:
            raise Unreachable("connect to 127.0.0.1:9 refused")

    mem = MemoryBackend("gone", faults=unreachable)
    assert run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns).outcome == "ok"
    for i in range(3):
        (src / f"a/f{i:04d}").write_text(f"changed {i}")
    for p in src.glob("c*/*"):
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    later: list[str] = []

    def slow_after_a(path: str, algorithm: str = "blake3", size_hint: int = 0) -> str:
        if "/c" in path:
            later.append(path)
            time.sleep(0.002)
        return hash_file(path, algorithm, size_hint)

    monkeypatch.setattr(push_mod, "hash_file", slow_after_a)
    up[0] = False
    r = run_push(_settings(src, mem), mem, catalog, NullReporter(), time.time_ns)
    assert r.outcome == "aborted" and "refused" in r.transfer.stopped_by
    assert not r.transfer.interrupted and r.transfer.unexamined
    assert len(later) < 1200, f"planning went on for {len(later)} of 2,000 files"
    assert catalog.jobs()[0]["outcome"] == "aborted"
