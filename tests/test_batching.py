"""Results recorded a batch at a time: the store's durability point comes before the catalog
records a batch, a failed durability point records nothing as archived, a SIGKILL loses at most
the unrecorded batch (the rerun adopts or re-sends it), and a local folder's sidecar that does not
describe its object is not trusted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hoard.backends.localfs import LocalBackend
from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.errors import DiskFull
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import NullReporter
from tests.conftest import make_tree


def push(
    src: Path, backend: MemoryBackend | LocalBackend, catalog: Catalog, workers: int = 4
) -> PushResult:
    settings = PushSettings(sources=(str(src),), remote=backend.url, workers=workers)
    return run_push(settings, backend, catalog, NullReporter(), time.time_ns)


def test_the_store_is_made_durable_before_the_catalog_records_a_batch(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i:03d}": str(i) for i in range(300)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    recorded_at_flush: list[int] = []

    def watch(op: str, key: str) -> None:
        if op == "flush":
            recorded_at_flush.append(len(catalog.objects_under(mem.url, "")))

    mem = MemoryBackend("m", faults=watch)
    r = push(src, mem, catalog)
    assert r.outcome == "ok" and r.counts()["uploaded"] == 300
    assert len(catalog.objects_under(mem.url, "")) == 300
    # one durability point per batch (300 results: at least two batches), each taken while the
    # catalog held only the batches before it, never the one being made durable
    assert len(recorded_at_flush) >= 2
    assert recorded_at_flush[0] == 0
    assert recorded_at_flush == sorted(recorded_at_flush)
    assert recorded_at_flush[-1] < 300


def test_a_failed_durability_point_records_nothing_as_archived_and_stops(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02d}": str(i) for i in range(5)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))

    def disk_full(op: str, key: str) -> None:
        if op == "flush":
            raise DiskFull("writing /mnt/backup: No space left on device")

    mem = MemoryBackend("m", faults=disk_full)
    r = push(src, mem, catalog, workers=1)
    assert r.outcome == "aborted"
    assert "No space left" in r.transfer.stopped_by
    assert r.counts()["uploaded"] == 0 and r.failed == 5
    assert catalog.objects_under(mem.url, "") == []
    job = catalog.job(catalog.jobs()[0]["id"])
    assert job is not None and (job["uploaded"], job["failed"]) == (0, 5)
    assert {t["outcome"] for t in job["transfers"]} == {"failed"}
    # the rerun (the store is fine again) checks them on the store: there they are, adopted
    mem.faults = None
    again = push(src, mem, catalog)
    assert again.outcome == "ok" and again.counts()["skipped"] == 5
    assert len(catalog.objects_under(mem.url, "")) == 5


def _recorded(catalog: Path) -> int:
    if not catalog.exists():
        return 0
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM objects").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_sigkill_mid_run_loses_at_most_the_unrecorded_batch(tmp_path: Path) -> None:
    files = {f"a{i // 100}/f{i:04d}.dat": os.urandom(512) for i in range(1500)}
    src = make_tree(tmp_path / "src", files)
    dest, cat_path = tmp_path / "dest", tmp_path / "c.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "hoard",
        "push",
        str(src),
        "--to",
        str(dest),
        "--catalog",
        str(cat_path),
        "-q",
        "--log-file",
        str(tmp_path / "hoard.log"),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and _recorded(cat_path) == 0:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    catalog = Catalog(str(cat_path))
    backend = LocalBackend(str(dest))
    recorded = catalog.objects_under(backend.url, "")
    assert 0 < len(recorded) < len(files), "killed too late to show anything"
    # everything recorded as archived is stored, whole, with its metadata
    for o in recorded:
        assert (dest / o.key).read_bytes() == files[o.key]
        assert backend.stat(o.key).metadata == o.metadata
    catalog.close()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    catalog = Catalog(str(cat_path))
    job = catalog.jobs()[0]
    # the rerun skips what was recorded, adopts what was stored but not recorded, sends the rest
    assert job["skipped"] >= len(recorded)
    assert job["skipped"] + job["uploaded"] == len(files)
    assert len(catalog.objects_under(backend.url, "")) == len(files)
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data


def test_a_sidecar_that_describes_another_version_of_the_object_is_ignored(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "alpha"})
    b = LocalBackend(str(tmp_path / "remote"))
    b.put("a.txt", str(src / "a.txt"), 5, {"hoard-hash": "blake3:abc"}, None)
    b.flush()
    assert b.stat("a.txt").metadata == {"hoard-hash": "blake3:abc"}
    sidecar = tmp_path / "remote" / ".hoard" / "meta" / "a.txt.json"
    assert "etag" in json.loads(sidecar.read_text())
    # a crash kept the sidecar of a newer write but not its object (or the reverse)
    (tmp_path / "remote" / "a.txt").write_text("older")
    os.utime(tmp_path / "remote" / "a.txt", ns=(1, 1))
    assert b.stat("a.txt").metadata == {}
