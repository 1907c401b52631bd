"""`hoard restore` against a real S3 server (moto on 127.0.0.1), as a user runs it: new root and
in place, overwrite policies, a restore killed with SIGKILL and rerun, corruption, hostile
keys and planted symlinks, archive tiers thawed across runs, GUID manifests, and a catalog
rebuilt from object metadata."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree
from tests.faultproxy import FaultProxy


def hoard(*args: str, env: dict[str, str], timeout: float = 120
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env},
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def env(moto_endpoint: str, tmp_path: Path) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": moto_endpoint, "HOARD_CATALOG": str(tmp_path / "c.sqlite")}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "Pictures", {
        "2025/DSC08007.jpg": os.urandom(3000), "2025/DSC08008.jpg": os.urandom(100),
        "2026/trip/IMG_1.heic": os.urandom(20_000), "notes.txt": "hello", "empty.txt": ""})
    for i, p in enumerate(sorted(src.rglob("*"))):
        if p.is_file():
            os.utime(p, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i * 10**9))
    return src


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def pushed(photos: Path, bucket: str, env: dict[str, str], *extra: str) -> str:
    url = f"s3://{bucket}/backup"
    r = hoard("push", str(photos), "--to", url, *extra, env=env)
    assert r.returncode == 0, r.stderr
    return url


def restore_everything(backend: Any, catalog: Any, to: str, workers: int = 8) -> Any:
    """Plan and run a restore of every object of ``backend`` into ``to``, in this process."""
    from hoard import restore as r
    from hoard.report import NullReporter

    settings = r.RestoreSettings(url=backend.url, to=to, workers=workers)
    steps = r.plan_restore(r.select_prefix(backend, "", catalog), [], settings, catalog,
                           lambda s: backend, time.time_ns())
    return r.run_restore(steps, settings, catalog, lambda s: backend, NullReporter(),
                         time.time_ns)


def test_restore_to_a_new_root_is_byte_exact_with_mtimes(photos: Path, s3_bucket: str,
                                                         env: dict[str, str],
                                                         tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env, "--template",
                 "backup/{file_modified:%Y-%m-%d}/{file_modified_datetime}:{filename}")
    out = tmp_path / "restored"
    r = hoard("restore", url, "--to", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert "restored=5" in r.stdout
    assert tree(out) == tree(photos)
    again = hoard("restore", url, "--to", str(out), env=env)
    assert "restored=0 skipped=5" in again.stdout
    assert not list(out.rglob("*.hoard-part"))


def test_restore_in_place_by_path_and_by_job(photos: Path, s3_bucket: str,
                                             env: dict[str, str]) -> None:
    pushed(photos, s3_bucket, env)
    before = tree(photos)
    (photos / "2025/DSC08007.jpg").unlink()
    (photos / "2026/trip/IMG_1.heic").unlink()
    r = hoard("restore", "--path", str(photos / "2025"), "--in-place", env=env)
    assert r.returncode == 0, r.stderr
    assert "restored=1 skipped=1 kept=0" in r.stdout  # DSC08008 untouched: verified, skipped
    assert not (photos / "2026/trip/IMG_1.heic").exists()
    r = hoard("restore", "--job", "1", "--in-place", env=env)
    assert r.returncode == 0, r.stderr
    assert tree(photos) == before


def test_overwrite_policies(photos: Path, s3_bucket: str, env: dict[str, str],
                           tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env)
    out = tmp_path / "out"
    make_tree(out, {"notes.txt": "local edit", "2025/DSC08008.jpg":
                    (photos / "2025/DSC08008.jpg").read_bytes()})
    never = hoard("restore", url, "--to", str(out), env=env)
    assert "kept=2" in never.stdout and (out / "notes.txt").read_text() == "local edit"
    changed = hoard("restore", url, "--to", str(out), "--overwrite", "if-changed", "--dry-run",
                    env=env)
    assert "download   " + str(out / "notes.txt") in changed.stdout
    assert "exists with other content" in changed.stdout
    assert "exists with the same content" in changed.stdout  # DSC08008: identical
    hoard("restore", url, "--to", str(out), "--overwrite", "if-changed", env=env)
    assert (out / "notes.txt").read_text() == "hello"
    (out / "notes.txt").write_text("edited again")
    always = hoard("restore", url, "--to", str(out), "--overwrite", "always", env=env)
    assert always.returncode == 0 and (out / "notes.txt").read_text() == "hello"


def test_a_restore_killed_mid_way_leaves_no_partial_file_and_resumes(
        tmp_path: Path, s3_bucket: str, moto_endpoint: str) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02d}.bin": os.urandom(200_000) for i in range(12)})
    catalog = str(tmp_path / "c.sqlite")
    direct = {"AWS_ENDPOINT_URL": moto_endpoint, "HOARD_CATALOG": catalog}
    url = pushed(src, s3_bucket, direct)
    out = tmp_path / "out"
    proxy = FaultProxy(moto_endpoint)
    proxy.delay_s["GET"] = 0.3
    with proxy.running() as purl:
        slow = {**os.environ, "AWS_ENDPOINT_URL": purl, "HOARD_CATALOG": catalog}
        proc = subprocess.Popen([sys.executable, "-m", "hoard", "restore", url, "--to", str(out),
                                 "--workers", "2"], env=slow, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            placed = [p for p in out.rglob("f*.bin")] if out.exists() else []
            if len(placed) >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        placed_at_kill = {p.name for p in out.glob("f*.bin")}
        assert 3 <= len(placed_at_kill) < 12
        for p in out.glob("f*.bin"):  # whatever has a final name is complete
            assert p.read_bytes() == (src / p.name).read_bytes()
        proxy.delay_s.clear()
        proxy.reset_counts()
        r = subprocess.run([sys.executable, "-m", "hoard", "restore", url, "--to", str(out)],
                           env=slow, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"skipped={len(placed_at_kill)}" in r.stdout
    assert proxy.count("GET") == 12 - len(placed_at_kill) + 1  # + the listing
    gets = [r for r in proxy.requests if r.method == "GET" and "list-type" not in r.query]
    assert gets and all("awscrt/" in r.headers["user-agent"] for r in gets)  # the CRT data path
    assert {k: v[0] for k, v in tree(out).items()} == {k: v[0] for k, v in tree(src).items()}
    assert not list(out.rglob("*.hoard-part"))


def test_a_corrupted_object_is_detected_and_not_placed(photos: Path, s3_bucket: str,
                                                      env: dict[str, str], s3_client: object,
                                                      tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env)
    head = s3_client.head_object(Bucket=s3_bucket, Key="backup/notes.txt")  # type: ignore[attr-defined]
    s3_client.put_object(Bucket=s3_bucket, Key="backup/notes.txt", Body=b"hellO",  # type: ignore[attr-defined]
                         Metadata=head["Metadata"])
    out = tmp_path / "out"
    r = hoard("restore", url, "--to", str(out), env=env)
    assert r.returncode == 1
    assert "does not match the recorded blake3:" in r.stderr
    assert not (out / "notes.txt").exists()
    assert not list(out.rglob("*.hoard-part"))
    assert "restored=4" in r.stdout


def test_hostile_keys_and_planted_symlinks_write_nothing_outside_the_target(
        s3_bucket: str, env: dict[str, str], s3_client: object, tmp_path: Path) -> None:
    hostile = {"../../escape.txt": "1", "/etc/hoard-evil": "2", "a\\b.txt": "3",
               "C:/windows.txt": "4", "bad\x07name": "5", "sub/../../up.txt": "6"}
    for i, (path, body) in enumerate(hostile.items()):
        s3_client.put_object(Bucket=s3_bucket, Key=f"planted/{i}", Body=body.encode(),  # type: ignore[attr-defined]
                             Metadata={"hoard-hash": "x", "hoard-path": path.replace("\x07", "%07"),
                                       "hoard-source": "/", "hoard-size": "1"})
    s3_client.put_object(Bucket=s3_bucket, Key="planted/Same.TXT", Body=b"A",  # type: ignore[attr-defined]
                         Metadata={"hoard-path": "Same.TXT", "hoard-hash": "x"})
    s3_client.put_object(Bucket=s3_bucket, Key="planted/same.txt", Body=b"a",  # type: ignore[attr-defined]
                         Metadata={"hoard-path": "same.txt", "hoard-hash": "x"})
    s3_client.put_object(Bucket=s3_bucket, Key="planted/link/inside.txt", Body=b"l",  # type: ignore[attr-defined]
                         Metadata={"hoard-path": "link/inside.txt"})
    out = tmp_path / "deep" / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir(parents=True)
    (out / "link").symlink_to(elsewhere)
    before = sorted(p for p in tmp_path.rglob("*"))
    r = hoard("restore", f"s3://{s3_bucket}/planted", "--to", str(out), env=env)
    assert r.returncode == 1
    for reason in ("is absolute", "contains a backslash", "'..', '.' or empty segment",
                   "control character", "collides with", "is a symlink or not a folder"):
        assert reason in r.stderr, reason
    after = sorted(p for p in tmp_path.rglob("*") if not p.name.startswith("c.sqlite"))
    new = [p for p in after if p not in before]
    assert all(str(p).startswith(str(out)) for p in new), new
    assert list(elsewhere.iterdir()) == []
    assert not Path("/etc/hoard-evil").exists()


def test_archive_tier_objects_are_thawed_tracked_across_runs_and_downloaded(
        photos: Path, s3_bucket: str, env: dict[str, str], tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env, "--tier", "deep_archive")
    out = tmp_path / "out"
    first = hoard("restore", url, "--to", str(out), env=env)
    assert first.returncode == 7
    assert "5 objects are in archive tiers: add --thaw" in first.stdout
    assert not out.exists() or not list(out.rglob("*.*"))

    dry = hoard("restore", url, "--to", str(out), "--thaw", "bulk", "--dry-run", env=env)
    assert "thaw: 5 objects" in dry.stdout and "at bulk speed" in dry.stdout

    second = hoard("restore", url, "--to", str(out), "--thaw", "bulk", "--days", "3", env=env)
    assert second.returncode == 7
    assert "thaw_requested=5 pending=5" in second.stdout
    assert "run the same command again" in second.stdout
    status = json.loads(hoard("restore", "--status", "--json", env=env).stdout)
    assert len(status) == 5 and {t["speed"] for t in status} == {"bulk"}
    assert {t["state"] for t in status} == {"ready"}  # moto thaws at once; real S3 takes hours

    third = hoard("restore", url, "--to", str(out), env=env)  # a later run, hours later
    assert third.returncode == 0, third.stderr
    assert "restored=5" in third.stdout
    assert tree(out) == tree(photos)


def test_wait_polls_until_thawed_then_downloads(photos: Path, s3_bucket: str,
                                               env: dict[str, str], tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env, "--tier", "glacier")
    out = tmp_path / "out"
    r = hoard("restore", url, "--to", str(out), "--thaw", "standard", "--wait",
              "--poll-interval", "0.2s", env=env)
    assert r.returncode == 0, r.stderr
    assert "restored=5" in r.stdout and "pending=0" in r.stdout
    assert tree(out) == tree(photos)


def test_catalog_rebuild_from_metadata_then_restore_in_place(photos: Path, s3_bucket: str,
                                                             env: dict[str, str],
                                                             tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env, "--template", "{guid}")
    before = tree(photos)
    for p in list(photos.rglob("*")):
        if p.is_file():
            p.unlink()
    lost = {**env, "HOARD_CATALOG": str(tmp_path / "new-laptop.sqlite")}
    refused = hoard("restore", url, "--in-place", env=lost)
    assert refused.returncode == 1 and "use --to" in refused.stderr
    rebuilt = hoard("catalog", "rebuild", url, env=lost)
    assert "objects=5 imported=5" in rebuilt.stdout
    r = hoard("restore", url, "--in-place", env=lost)
    assert r.returncode == 0, r.stderr
    assert tree(photos) == before


def test_guid_archive_manifest_export_and_restore(photos: Path, s3_bucket: str,
                                                  env: dict[str, str], tmp_path: Path) -> None:
    url = pushed(photos, s3_bucket, env, "--template", "{guid}")
    manifest = tmp_path / "manifest.json"
    assert hoard("manifest", "export", url, "--out", str(manifest), env=env).returncode == 0
    mapping = json.loads(manifest.read_text())
    assert len(mapping) == 5
    assert sorted(mapping.values()) == sorted(str(p) for p in photos.rglob("*") if p.is_file())
    mapping["placeholder"] = str(photos / "2027" / "empty-album") + "/"
    manifest.write_text(json.dumps(mapping))
    out = tmp_path / "out"
    r = hoard("restore", url, "--manifest", str(manifest), "--to", str(out), "--metrics",
              str(tmp_path / "metrics.jsonl"), env=env)
    assert r.returncode == 0, r.stderr
    assert tree(out) == tree(photos)
    assert (out / "2027" / "empty-album").is_dir()
    samples = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert samples and {"cpu_percent", "rss_bytes", "read_bytes", "write_bytes"} <= set(samples[0])


def test_restore_needs_a_selection_and_a_destination(env: dict[str, str]) -> None:
    assert hoard("restore", "s3://b/x", env=env).returncode == 2
    assert hoard("restore", "--to", "/tmp/x", env=env).returncode == 2
    r = hoard("restore", "s3://b/x", "--path", "/y", "--to", "/tmp/x", env=env)
    assert r.returncode == 2 and "choose what to restore" in r.stderr


def test_thaw_status_tells_pending_ready_and_expired_apart(tmp_path: Path) -> None:
    from hoard.backends.memory import MemoryBackend
    from hoard.catalog import Catalog
    from hoard.restore import thaw_status

    store = MemoryBackend("thaws")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for key in ("ready", "pending", "expired"):
        store.put(key, str(src), 1, {}, "archive")
    store.thaw(["ready"], 1, "bulk")
    store.finish_thaws()
    now = 10**18
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    catalog.record_thaw(store.url, "ready", "bulk", 1, now - 5, now + 10**12)
    catalog.record_thaw(store.url, "pending", "standard", 1, now - 5, now + 10**12)
    catalog.record_thaw(store.url, "expired", "bulk", 1, now - 10**12, now - 1)
    states = {t["key"]: t["state"] for t in thaw_status(catalog, lambda s: store, now)}
    assert states == {"ready": "ready", "pending": "pending", "expired": "expired"}


def test_large_objects_come_in_parallel_ranges_and_are_verified(
        tmp_path: Path, moto_endpoint: str, s3_bucket: str, s3_client: object,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hoard import restore as r
    from hoard.backends.s3 import S3Backend
    from hoard.catalog import Catalog
    from hoard.report import NullReporter

    monkeypatch.setattr(r, "RANGE_BYTES", 64 * 1024)
    src = make_tree(tmp_path / "src", {"big.bin": os.urandom(1_000_003), "tiny.txt": "t",
                                       "empty": ""})
    env = {"AWS_ENDPOINT_URL": moto_endpoint, "HOARD_CATALOG": str(tmp_path / "c.sqlite")}
    pushed(src, s3_bucket, env)
    backend = S3Backend(s3_bucket, endpoint_url=moto_endpoint)
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    ranges: list[tuple[int, int | None]] = []
    real_open = backend.open

    def counting_open(key: str, offset: int = 0, length: int | None = None) -> object:
        ranges.append((offset, length))
        return real_open(key, offset, length)

    monkeypatch.setattr(backend, "open", counting_open)
    real_start_get = backend.start_get
    whole: list[str] = []

    def counting_start_get(key: str, size: int, done: Any, wait: bool = True) -> bool:
        started = real_start_get(key, size, done, wait)
        if started:
            whole.append(key)
        return started

    monkeypatch.setattr(backend, "start_get", counting_start_get)
    settings = r.RestoreSettings(url=f"s3://{s3_bucket}/backup", to=str(tmp_path / "out"))
    items = r.select_prefix(backend, "backup/", catalog)
    steps = r.plan_restore(items, [], settings, catalog, lambda s: backend, time.time_ns())
    result = r.run_restore(steps, settings, catalog, lambda s: backend, NullReporter(),
                           time.time_ns)
    assert result.failed == 0 and result.restored == 3
    assert {k: v[0] for k, v in tree(tmp_path / "out").items()} == \
        {k: v[0] for k, v in tree(src).items()}
    assert len(ranges) == 16  # 1,000,003 bytes in 64 KiB ranges, waited for
    assert whole == ["backup/tiny.txt"]  # one range at most: read whole, not waited for

    head = s3_client.head_object(Bucket=s3_bucket, Key="backup/big.bin")  # type: ignore[attr-defined]
    damaged = bytearray((src / "big.bin").read_bytes())
    damaged[700_000] ^= 1
    s3_client.put_object(Bucket=s3_bucket, Key="backup/big.bin", Body=bytes(damaged),  # type: ignore[attr-defined]
                         Metadata=head["Metadata"])
    out2 = tmp_path / "out2"
    settings = r.RestoreSettings(url=f"s3://{s3_bucket}/backup", to=str(out2))
    steps = r.plan_restore(r.select_prefix(backend, "backup/", catalog), [], settings, catalog,
                           lambda s: backend, time.time_ns())
    result = r.run_restore(steps, settings, catalog, lambda s: backend, NullReporter(),
                           time.time_ns)
    assert result.failed == 1 and "does not match the recorded" in result.errors[0]
    assert not (out2 / "big.bin").exists() and not list(out2.rglob("*.hoard-part"))


def test_a_batch_is_made_durable_then_renamed_then_its_names_synced_then_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order that makes a crash safe: the batch's bytes reach the disk before any file
    gets its name, the names reach it before the catalog says restored."""
    from hoard import durable
    from hoard.backends.localfs import LocalBackend
    from hoard.catalog import Catalog

    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i}.txt": f"x{i}" for i in range(12)})
    catalog_path = str(tmp_path / "c.sqlite")
    pushed_ok = hoard("push", str(src), "--to", str(tmp_path / "remote"), env={
        "HOARD_CATALOG": catalog_path})
    assert pushed_ok.returncode == 0, pushed_ok.stderr
    events: list[str] = []
    real_syncfs, real_rename, real_record = durable.syncfs, os.rename, Catalog.record_restores

    def syncfs(fd: int | None) -> bool:
        events.append("syncfs")
        return real_syncfs(fd)

    def rename(a: str, b: str, **kw: object) -> None:
        if str(b).startswith("f"):  # the restored files, not sqlite's or anyone else's
            events.append("rename")
        real_rename(a, b, **kw)  # type: ignore[arg-type]

    def record(self: Catalog, job: int, rows: list[object]) -> None:
        events.append(f"record {len(rows)}")
        real_record(self, job, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(durable, "syncfs", syncfs)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(Catalog, "record_restores", record)
    backend = LocalBackend(str(tmp_path / "remote"))
    catalog = Catalog(catalog_path)
    try:
        result = restore_everything(backend, catalog, str(tmp_path / "out"))
    finally:
        catalog.close()
    assert result.failed == 0 and result.restored == 12
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        trusted = durable.trusted(fd)
    finally:
        os.close(fd)
    renames = ["rename"] * 12
    if trusted:  # one batch: bytes synced, renamed, names synced, recorded
        assert events == ["syncfs", *renames, "syncfs", "record 12"]
    else:  # each file fsynced when staged; the folders fsynced after the renames
        assert events == [*renames, "record 12"]
    assert {k: v[0] for k, v in tree(tmp_path / "out").items()} == \
        {k: v[0] for k, v in tree(src).items()}


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_ranges_within_a_file_are_fetched_at_most_workers_and_four_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """--workers 1 means one connection, even inside one large file; above four, ranges stay
    four at a time."""
    import threading

    from hoard import restore as r
    from hoard.backends.localfs import LocalBackend
    from hoard.catalog import Catalog

    monkeypatch.setattr(r, "RANGE_BYTES", 64 * 1024)
    data = os.urandom(16 * 64 * 1024 + 5)  # 17 ranges
    src = make_tree(tmp_path / "src", {"big.bin": data})
    catalog_path = str(tmp_path / "c.sqlite")
    ok = hoard("push", str(src), "--to", str(tmp_path / "remote"),
               env={"HOARD_CATALOG": catalog_path})
    assert ok.returncode == 0, ok.stderr
    backend = LocalBackend(str(tmp_path / "remote"))
    expected = min(workers, 4)
    lock, open_now, most = threading.Lock(), [0], [0]
    first = threading.Barrier(expected, timeout=10)  # the first ones meet: the cap is reached
    seen = [0]
    real_open = backend.open

    class Tracked:
        def __init__(self, stream: object) -> None:
            self._stream = stream

        def read(self, n: int = -1) -> bytes:
            return self._stream.read(n)  # type: ignore[attr-defined, no-any-return]

        def close(self) -> None:
            time.sleep(0.01)  # hold the range open a little, so any excess would overlap
            with lock:
                open_now[0] -= 1
            self._stream.close()  # type: ignore[attr-defined]

    def tracking_open(key: str, offset: int = 0, length: int | None = None) -> Tracked:
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
            seen[0] += 1
            meet = seen[0] <= expected
        if meet:
            first.wait()
        return Tracked(real_open(key, offset, length))

    monkeypatch.setattr(backend, "open", tracking_open)
    catalog = Catalog(catalog_path)
    try:
        result = restore_everything(backend, catalog, str(tmp_path / "out"), workers=workers)
    finally:
        catalog.close()
    assert result.failed == 0 and result.restored == 1, result.errors
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert seen[0] == 17
    assert most[0] == expected
