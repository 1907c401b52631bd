"""The push pipeline end to end on real backends: change detection, adoption from remote
metadata, conflicts, dry-run parity, files changing mid-upload, retries and early stops."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hoard import push as push_mod
from hoard.backends.base import Backend
from hoard.backends.localfs import LocalBackend
from hoard.backends.memory import MemoryBackend
from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import Retrying, RetryPolicy
from hoard.catalog import Catalog
from hoard.errors import KeyConflict, Transient, Unreachable
from hoard.hashing import hash_file
from hoard.model import ActionKind
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import NullReporter
from tests.conftest import make_tree


def push(src: Path, backend: Backend, catalog: Catalog, **kw: object) -> PushResult:
    settings = PushSettings(sources=(str(src),), remote=backend.url, workers=4,
                            **kw)  # type: ignore[arg-type]
    return run_push(settings, backend, catalog, NullReporter(), time.time_ns)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", {"a.txt": "alpha", "sub/b.txt": "bravo!",
                                        "sub/deep/c.bin": os.urandom(3000)})


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths whose content the planner read (hashed), in order."""
    seen: list[str] = []

    def counting(path: str, algorithm: str = "blake3", size_hint: int = 0) -> str:
        seen.append(path)
        return hash_file(path, algorithm, size_hint)

    monkeypatch.setattr(push_mod, "hash_file", counting)
    return seen


@pytest.fixture(params=["local", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalBackend(str(tmp_path / "remote"))
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3Backend(request.getfixturevalue("s3_bucket"), endpoint_url=endpoint)


def uploaded(r: PushResult, catalog: Catalog) -> dict[str, str]:
    """What a real run uploaded, key → reason: from its job's transfers (a run that uploads
    while it plans keeps no upload in its plan)."""
    job = catalog.job(r.job_id or 0)
    assert job is not None
    return {t["key"]: t["reason"] for t in job["transfers"] if t["outcome"] == "ok"}


def _keys(b: Backend) -> list[str]:
    return [o.key for o in b.list()]


def test_first_push_uploads_everything_and_records_it(tree: Path, remote: Backend,
                                                      catalog: Catalog) -> None:
    r = push(tree, remote, catalog)
    assert r.counts() == {"scanned": 3, "uploaded": 3, "resumed": 0, "skipped": 0,
                          "failed": 0, "bytes": 5 + 6 + 3000}
    assert _keys(remote) == ["a.txt", "sub/b.txt", "sub/deep/c.bin"]
    obj = remote.stat("sub/b.txt")
    assert obj.metadata["hoard-hash"] == hash_file(str(tree / "sub/b.txt"))
    assert obj.metadata["hoard-path"] == "sub/b.txt"
    assert obj.metadata["hoard-size"] == "6"
    job = catalog.job(r.job_id or 0)
    assert job is not None and job["outcome"] == "ok" and len(job["transfers"]) == 3
    assert job["settings"]["sources"] == [str(tree)]
    rec = catalog.object_record(remote.url, "sub/b.txt")
    assert rec is not None and rec.path == str(tree / "sub/b.txt")


def test_rerun_over_unchanged_files_reads_nothing_and_sends_nothing(
        tree: Path, catalog: Catalog, hashes: list[str]) -> None:
    mem = MemoryBackend("rerun")
    push(tree, mem, catalog)
    assert len(hashes) == 3
    hashes.clear()
    mem.calls.clear()
    r = push(tree, mem, catalog)
    assert (r.counts()["uploaded"], r.counts()["skipped"]) == (0, 3)
    assert hashes == []  # size, mtime_ns and inode matched: not read again
    assert mem.calls == []  # not a single request to the store


def test_touched_file_is_hashed_once_then_trusted_again(tree: Path, catalog: Catalog,
                                                       hashes: list[str]) -> None:
    mem = MemoryBackend("touch")
    push(tree, mem, catalog)
    os.utime(tree / "a.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    hashes.clear()
    r = push(tree, mem, catalog)
    assert hashes == [str(tree / "a.txt")]
    assert [(a.kind, a.reason) for a in r.plan.actions if a.file.rel_path == "a.txt"] == [
        (ActionKind.SKIP, "unchanged")]
    hashes.clear()
    push(tree, mem, catalog)
    assert hashes == []


def test_changed_files_are_uploaded_with_reasons(tree: Path, remote: Backend,
                                                 catalog: Catalog) -> None:
    push(tree, remote, catalog)
    (tree / "a.txt").write_text("ALPHA")  # same size, new content
    (tree / "sub/b.txt").write_text("bravo, longer")
    (tree / "new.txt").write_text("new")
    r = push(tree, remote, catalog)
    assert uploaded(r, catalog) == {"a.txt": "changed: content", "new.txt": "new",
                                    "sub/b.txt": "changed: size 6 → 13"}
    assert r.plan.actions == []  # keeps no vouched skip, and uploads as it plans
    assert (r.counts()["uploaded"], r.counts()["skipped"]) == (3, 1)
    dry = push(tree, remote, catalog, dry_run=True)  # a dry run keeps every decision
    assert {a.file.rel_path: a.reason for a in dry.plan.actions} == {
        "a.txt": "unchanged", "new.txt": "unchanged", "sub/b.txt": "unchanged",
        "sub/deep/c.bin": "unchanged"}
    stream = remote.open("a.txt")
    assert stream.read() == b"ALPHA"
    stream.close()


def test_new_machine_adopts_objects_from_remote_metadata(tree: Path, remote: Backend,
                                                         tmp_path: Path) -> None:
    first = Catalog(str(tmp_path / "old.sqlite"))
    push(tree, remote, first)
    fresh = Catalog(str(tmp_path / "new.sqlite"))
    r = push(tree, remote, fresh)
    assert r.counts()["uploaded"] == 0
    assert {a.reason for a in r.plan.actions} == {"unchanged (matches the remote object's hash)"}
    rec = fresh.object_record(remote.url, "a.txt")
    assert rec is not None and rec.hash == hash_file(str(tree / "a.txt"))
    # Adopted: the next run decides from the catalog alone.
    r2 = push(tree, remote, fresh, dry_run=True)
    assert {a.reason for a in r2.plan.actions} == {"unchanged"}


def test_object_without_hoard_metadata_is_replaced(tree: Path, moto_endpoint: str,
                                                   s3_bucket: str, s3_client: object,
                                                   catalog: Catalog) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.txt", Body=b"alpha")  # type: ignore[attr-defined]
    b = S3Backend(s3_bucket, endpoint_url=moto_endpoint)
    r = push(tree, b, catalog)
    assert uploaded(r, catalog)["a.txt"] == "changed: remote object has no hoard hash"
    assert "hoard-hash" in b.stat("a.txt").metadata


def test_prefix_and_template_shape_the_keys(tree: Path, remote: Backend,
                                            catalog: Catalog) -> None:
    r = push(tree, remote, catalog, prefix="archive/2025", template="{base_dir_underscore}/"
             "{filename_no_ext}.{file_ext}")
    assert r.failed == 0
    assert _keys(remote) == ["archive/2025/a.txt", "archive/2025/sub/b.txt",
                             "archive/2025/sub_deep/c.bin"]


def test_conflicting_keys_stop_the_run_before_anything_moves(tmp_path: Path,
                                                             catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {"2024/IMG_1.jpg": "a", "2025/IMG_1.jpg": "b",
                                       "2025/IMG_2.jpg": "c"})
    mem = MemoryBackend("conflict")
    with pytest.raises(KeyConflict) as err:
        push(src, mem, catalog, template="photos/{filename}")
    assert str(src / "2024/IMG_1.jpg") in str(err.value)
    assert str(src / "2025/IMG_1.jpg") in str(err.value)
    assert mem.objects == {}
    assert catalog.jobs() == []


def test_overlapping_sources_upload_a_file_once(tree: Path, catalog: Catalog) -> None:
    mem = MemoryBackend("overlap")
    settings = PushSettings(sources=(str(tree), str(tree / "sub" / "b.txt")), remote=mem.url,
                            base=str(tree))
    r = run_push(settings, mem, catalog, NullReporter(), time.time_ns)
    assert r.counts()["uploaded"] == 3
    assert sorted(mem.objects) == ["a.txt", "sub/b.txt", "sub/deep/c.bin"]


def test_dry_run_moves_nothing_records_nothing_and_matches_the_real_run(
        tree: Path, remote: Backend, catalog: Catalog) -> None:
    push(tree, remote, catalog)
    (tree / "a.txt").write_text("changed!")
    (tree / "z.txt").write_text("new")
    dry = push(tree, remote, catalog, dry_run=True)
    assert dry.job_id is None and len(catalog.jobs()) == 1
    assert "z.txt" not in _keys(remote)
    planned = [(a.kind.value, a.key, a.reason) for a in dry.plan.actions]
    real = push(tree, remote, catalog)
    # The real run uploads as it plans, and counts the skips the catalog vouches for.
    assert real.plan.actions == []
    assert real.plan.totals() == dry.plan.totals()
    job = catalog.job(real.job_id or 0)
    assert job is not None
    done = [(t["action"], t["key"], t["reason"]) for t in job["transfers"]]
    assert sorted(done) == sorted(p for p in planned if p[0] != "skip")
    assert {p[0] for p in planned} == {"skip", "upload"}


def test_file_changing_during_upload_is_retried_once(tree: Path, catalog: Catalog) -> None:
    target = tree / "sub" / "b.txt"
    puts: list[str] = []

    def grow_once(op: str, key: str) -> None:
        if op == "put" and key == "sub/b.txt":
            puts.append(key)
            if len(puts) == 1:
                with open(target, "a") as fh:
                    fh.write(" and more")
                os.utime(target, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))

    mem = MemoryBackend("changing", faults=grow_once)
    r = push(tree, mem, catalog)
    assert r.failed == 0 and len(puts) == 2
    assert mem.objects["sub/b.txt"].data == b"bravo! and more"
    rec = catalog.object_record(mem.url, "sub/b.txt")
    assert rec is not None and rec.hash == hash_file(str(target))
    outcomes = [t["outcome"] for t in catalog.history(str(target))]
    assert outcomes == ["retried", "ok"]


def test_file_that_keeps_changing_is_not_recorded_as_archived(tree: Path,
                                                              catalog: Catalog) -> None:
    target = tree / "a.txt"
    counter = [0]

    def always_grow(op: str, key: str) -> None:
        if op == "put" and key == "a.txt":
            counter[0] += 1
            with open(target, "a") as fh:
                fh.write("x")
            os.utime(target, ns=(counter[0] * 10**18, counter[0] * 10**18))

    mem = MemoryBackend("restless", faults=always_grow)
    r = push(tree, mem, catalog)
    assert r.failed == 1 and r.counts()["uploaded"] == 2
    assert catalog.object_record(mem.url, "a.txt") is None
    assert "kept changing" in r.transfer.errors[0]
    assert r.outcome == "failed"


def test_throttling_is_retried_until_it_passes(tree: Path, catalog: Catalog) -> None:
    failures: dict[str, int] = {}

    def slow_down(op: str, key: str) -> None:
        if op == "put" and failures.get(key, 0) < 2:
            failures[key] = failures.get(key, 0) + 1
            raise Transient(f"{key}: 503 SlowDown")

    inner = MemoryBackend("throttled", faults=slow_down)
    delays: list[float] = []
    b = Retrying(inner, RetryPolicy(attempts=4, sleep=delays.append))
    r = push(tree, b, catalog)
    assert r.failed == 0 and r.counts()["uploaded"] == 3
    assert b.retries == 6 and len(delays) == 6
    assert all(0 <= d <= 0.5 for d in delays)  # full jitter under the 2nd-attempt cap


def test_unreachable_store_stops_the_run_and_says_what_was_kept(tmp_path: Path,
                                                                catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02d}": str(i) for i in range(20)})
    calls = [0]

    def down_after_three(op: str, key: str) -> None:
        if op == "put":
            calls[0] += 1
            if calls[0] > 3:
                raise Unreachable("connect to 127.0.0.1:9 refused")

    mem = MemoryBackend("down", faults=down_after_three)
    settings = PushSettings(sources=(str(src),), remote=mem.url, workers=1)
    r = run_push(settings, mem, catalog, NullReporter(), time.time_ns)
    assert r.outcome == "aborted"
    assert r.counts()["uploaded"] == 3
    assert r.failed == 17
    assert r.transfer.not_attempted >= 15  # at most 2 x workers requests were in flight
    assert calls[0] <= 5
    assert "refused" in r.transfer.stopped_by
    assert len(mem.objects) == 3
    job = catalog.jobs()[0]
    assert (job["outcome"], job["uploaded"], job["failed"]) == ("aborted", 3, 17)
    assert len(catalog.job(job["id"])["transfers"]) == 3 + 17 - r.transfer.not_attempted


def test_unchanged_files_in_two_sources_with_one_key_are_a_conflict(tmp_path: Path,
                                                                    catalog: Catalog) -> None:
    one = make_tree(tmp_path / "one", {"x.txt": "same", "a.txt": "a"})
    two = make_tree(tmp_path / "two", {"x.txt": "same"})
    mem = MemoryBackend("two-sources")
    push(one, mem, catalog)
    push(two, mem, catalog)  # /two/x.txt matches x.txt's hash: skipped, its hash remembered
    with pytest.raises(KeyConflict) as err:  # both vouched for by the catalog, one key
        run_push(PushSettings(sources=(str(one), str(two)), remote=mem.url), mem, catalog,
                 NullReporter(), time.time_ns)
    assert str(one / "x.txt") in str(err.value) and str(two / "x.txt") in str(err.value)


def test_names_equal_in_nfc_are_a_conflict_even_when_the_catalog_vouches(
        tmp_path: Path, catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {"d/\u00e9.txt": "same"})  # composed é
    mem = MemoryBackend("nfc")
    push(src, mem, catalog)
    # Decomposed é: sorts first, renders to the same key; the composed one is vouched for.
    (src / "d" / "e\u0301.txt").write_text("same")
    with pytest.raises(KeyConflict) as err:
        push(src, mem, catalog)
    assert str(src / "d" / "e\u0301.txt") in str(err.value)
    assert str(src / "d" / "\u00e9.txt") in str(err.value)
