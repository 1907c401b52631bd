"""`hoard sync` against a real S3 server (moto on 127.0.0.1): mirror semantics, every delete
guard, safer deletes, the report, and a property test that a sync leaves the prefix equal to
the source."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import RetryPolicy
from hoard.catalog import Catalog
from hoard.errors import UsageError
from hoard.push import PushSettings
from hoard.report import NullReporter
from hoard.sync import SyncResult, SyncSettings, run_sync
from tests.conftest import make_tree
from tests.faultproxy import FaultProxy, Request


@pytest.fixture
def s3(moto_endpoint: str, s3_bucket: str) -> Iterator[S3Backend]:
    b = S3Backend(s3_bucket, endpoint_url=moto_endpoint,
                  policy=RetryPolicy(attempts=3, sleep=lambda s: None))
    yield b
    b.close()


def sync(src: Path, b: S3Backend, catalog: Catalog, prefix: str = "p", reporter: object = None,
         **kw: object) -> SyncResult:
    push_kw = {k: kw.pop(k) for k in list(kw) if k in ("template", "dry_run", "workers")}
    push = PushSettings(sources=(str(src),), remote=f"s3://{b.bucket}/{prefix}", prefix=prefix,
                        **push_kw)  # type: ignore[arg-type]
    settings = SyncSettings(push, b.bucket, **kw)  # type: ignore[arg-type]
    return run_sync(settings, b, catalog, reporter or NullReporter(),  # type: ignore[arg-type]
                    time.time_ns)


def remote_tree(b: S3Backend, prefix: str = "p/") -> dict[str, bytes]:
    out = {}
    for o in b.list(prefix):
        stream = b.open(o.key)
        out[o.key.removeprefix(prefix)] = stream.read()
        stream.close()
    return out


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", {f"d{i}/f{j}.txt": f"{i}-{j}" for i in range(2)
                                        for j in range(5)})


def test_adds_updates_skips_and_lists_extras_without_deleting(src: Path, s3: S3Backend,
                                                               catalog: Catalog) -> None:
    first = sync(src, s3, catalog)
    assert (first.transfer.uploaded, first.failed) == (10, 0)
    assert remote_tree(s3) == local_tree(src)
    (src / "d0/f0.txt").write_text("updated, longer")
    (src / "d1/f4.txt").unlink()
    (src / "new.txt").write_text("new")
    second = sync(src, s3, catalog)
    reasons = {a.key: a.reason for a in second.plan.actions}
    assert reasons["p/d0/f0.txt"] == "changed: size 3 → 15"
    assert reasons["p/new.txt"] == "new"
    assert "p/d0/f1.txt" not in reasons  # unchanged: counted, not kept by a real run
    assert second.skipped == 8
    assert [d.key for d in second.plan.deletes] == ["p/d1/f4.txt"]
    assert (second.transfer.uploaded, second.deleted, second.extras) == (2, 0, 1)
    assert "d1/f4.txt" in remote_tree(s3)  # listed, never removed without --delete


def test_delete_removes_extras_and_records_each_as_a_transfer(src: Path, s3: S3Backend,
                                                              catalog: Catalog) -> None:
    sync(src, s3, catalog)
    (src / "d1/f4.txt").unlink()
    (src / "d0/f2.txt").unlink()
    r = sync(src, s3, catalog, delete=True)
    assert (r.deleted, r.delete_withheld, r.failed) == (2, 0, 0)
    assert remote_tree(s3) == local_tree(src)
    job = catalog.job(r.job_id or 0)
    assert job is not None
    deletes = [(t["key"], t["outcome"], t["path"]) for t in job["transfers"]
               if t["action"] == "delete"]
    assert sorted(deletes) == [("p/d0/f2.txt", "ok", str(src / "d0/f2.txt")),
                               ("p/d1/f4.txt", "ok", str(src / "d1/f4.txt"))]
    assert catalog.object_record(s3.url, "p/d0/f2.txt") is None
    assert (job["outcome"], r.counts()["deleted"]) == ("ok", 2)


def test_dry_run_shows_every_action_and_matches_the_real_run(src: Path, s3: S3Backend,
                                                             catalog: Catalog) -> None:
    sync(src, s3, catalog)
    (src / "d0/f0.txt").write_text("x")
    (src / "d1/f0.txt").unlink()
    (src / "added.txt").write_text("+")
    dry = sync(src, s3, catalog, delete=True, dry_run=True)
    assert remote_tree(s3)["d1/f0.txt"] == b"1-0"
    planned = ([(a.kind.value, a.key, a.reason) for a in dry.plan.actions],
               [(d.key, d.reason) for d in dry.plan.deletes])
    real = sync(src, s3, catalog, delete=True)
    assert ([(a.kind.value, a.key, a.reason) for a in real.plan.actions],
            [(d.key, d.reason) for d in real.plan.deletes]) == (
        [p for p in planned[0] if p[0] != "skip"], planned[1])
    assert real.plan.totals() == dry.plan.totals()
    assert dry.plan.totals()["delete"] == 1 and dry.plan.totals()["upload"] == 2


def test_percentage_guard_withholds_every_delete_until_forced(src: Path, s3: S3Backend,
                                                              catalog: Catalog) -> None:
    sync(src, s3, catalog)
    for name in ("d0/f0.txt", "d0/f1.txt", "d0/f2.txt"):
        (src / name).unlink()
    r = sync(src, s3, catalog, delete=True)
    assert (r.deleted, r.delete_withheld) == (0, 3)
    assert "3 of 10 objects would be deleted, more than --max-delete 20%" in r.refusals[0]
    assert len(remote_tree(s3)) == 10
    assert sync(src, s3, catalog, delete=True, max_delete="30%").deleted == 3


def test_count_guard_and_force(src: Path, s3: S3Backend, catalog: Catalog) -> None:
    sync(src, s3, catalog)
    (src / "d0/f0.txt").unlink()
    (src / "d0/f1.txt").unlink()
    r = sync(src, s3, catalog, delete=True, max_delete="1")
    assert r.delete_withheld == 2 and "--max-delete 1" in r.refusals[0]
    forced = sync(src, s3, catalog, delete=True, max_delete="1", force=True)
    assert forced.deleted == 2
    with pytest.raises(UsageError):
        sync(src, s3, catalog, delete=True, max_delete="lots")


def test_empty_source_withholds_deletes(src: Path, s3: S3Backend, catalog: Catalog,
                                        tmp_path: Path) -> None:
    sync(src, s3, catalog)
    shutil.rmtree(src)
    src.mkdir()
    r = sync(src, s3, catalog, delete=True, force=True)
    assert r.delete_withheld == 10 and "the source is empty" in r.refusals[0]
    assert len(remote_tree(s3)) == 10
    assert sync(src, s3, catalog, delete=True, force=True,
                allow_empty_source=True).deleted == 10


def test_missing_marker_withholds_deletes(src: Path, s3: S3Backend, catalog: Catalog) -> None:
    (src / ".hoard-marker").write_text("photos disk")
    sync(src, s3, catalog, marker=".hoard-marker")
    (src / ".hoard-marker").unlink()
    (src / "d0/f0.txt").unlink()
    r = sync(src, s3, catalog, delete=True, marker=".hoard-marker")
    assert r.delete_withheld == 2  # the marker object and d0/f0.txt
    assert "marker file '.hoard-marker' is missing" in r.refusals[0]


def test_a_source_on_another_device_withholds_deletes(tmp_path: Path, s3: S3Backend,
                                                      catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}": str(i) for i in range(10)})
    sync(src, s3, catalog)
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=1m tmpfs {src} 2>/dev/null"):
        pytest.skip("needs root to mount a tmpfs over the source")
    try:  # another disk mounted where the source was, holding most of the same files
        make_tree(src, {f"f{i}": str(i) for i in range(9)})
        r = sync(src, s3, catalog, delete=True)
        assert r.delete_withheld == 1
        assert "different device than last time" in r.refusals[0]
        assert len(remote_tree(s3)) == 10
    finally:
        os.system(f"umount {src}")


def test_a_listing_that_breaks_off_halfway_withholds_deletes(
        tmp_path: Path, moto_endpoint: str, s3_bucket: str, catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02d}": str(i) for i in range(12)})
    proxy = FaultProxy(moto_endpoint)
    lists = [0]

    def second_page_fails(req: Request) -> str:
        if req.method == "GET" and "list-type" in req.query:
            lists[0] += 1
            return "slowdown" if lists[0] >= 2 else "pass"
        return "pass"

    with proxy.running() as url:
        b = S3Backend(s3_bucket, endpoint_url=url,
                      policy=RetryPolicy(attempts=2, sleep=lambda s: None))
        b.list_page_size = 5
        sync(src, b, catalog)  # first sync: the listing is empty, one page
        for i in range(6):
            (src / f"f{i:02d}").unlink()
        proxy.decide = second_page_fails
        r = sync(src, b, catalog, delete=True, force=True)
    assert r.listing_error and "SlowDown" in r.listing_error
    assert r.deleted == 0 and r.delete_withheld == 5  # the extras seen before the break
    assert "listing the remote failed" in r.refusals[0]
    assert all(a.reason == "unchanged" for a in r.plan.actions)  # catalog vouches for the rest


def test_an_upload_error_withholds_deletes(tmp_path: Path, moto_endpoint: str, s3_bucket: str,
                                           catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {"keep.txt": "k", "gone.txt": "g"})
    proxy = FaultProxy(moto_endpoint)
    with proxy.running() as url:
        b = S3Backend(s3_bucket, endpoint_url=url,
                      policy=RetryPolicy(attempts=2, sleep=lambda s: None))
        sync(src, b, catalog)
        (src / "gone.txt").unlink()
        (src / "broken.txt").write_text("will fail")
        proxy.decide = lambda r: "slowdown" if r.path.endswith("broken.txt") else "pass"
        r = sync(src, b, catalog, delete=True, force=True)
    assert r.failed == 1 and r.deleted == 0 and r.delete_withheld == 1
    assert "broken.txt" in r.refusals[0]


def test_backup_prefix_moves_extras_instead_of_deleting(src: Path, s3: S3Backend,
                                                        catalog: Catalog) -> None:
    sync(src, s3, catalog)
    (src / "d0/f3.txt").unlink()
    r = sync(src, s3, catalog, delete=True, backup_prefix="trash")
    assert r.deleted == 1
    assert "d0/f3.txt" not in remote_tree(s3)
    [(key, data)] = remote_tree(s3, "trash/").items()
    assert key.endswith("/p/d0/f3.txt") and data == b"0-3"
    assert r.plan.deletes[0].key == "p/d0/f3.txt"


def test_an_object_changed_after_the_listing_is_not_deleted(src: Path, s3: S3Backend,
                                                            catalog: Catalog,
                                                            s3_client: object) -> None:
    sync(src, s3, catalog)
    (src / "d1/f1.txt").unlink()

    class ChangeItMidRun(NullReporter):
        def planned(self, upload_files: int, upload_bytes: int) -> None:
            s3_client.put_object(Bucket=s3.bucket, Key="p/d1/f1.txt",  # type: ignore[attr-defined]
                                 Body=b"someone else wrote this")

    r = sync(src, s3, catalog, reporter=ChangeItMidRun(), delete=True)
    assert (r.deleted, r.delete_changed) == (0, 1)
    assert remote_tree(s3)["d1/f1.txt"] == b"someone else wrote this"
    job = catalog.job(r.job_id or 0)
    assert job is not None
    assert [t["outcome"] for t in job["transfers"] if t["action"] == "delete"] == ["kept"]


def test_template_keys_define_the_mirror(tmp_path: Path, s3: S3Backend,
                                         catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {"a/x.jpg": "1", "b/y.jpg": "2"})
    sync(src, s3, catalog, template="{base_dir_underscore}-{filename}")
    assert sorted(remote_tree(s3)) == ["a-x.jpg", "b-y.jpg"]
    (src / "a/x.jpg").unlink()
    r = sync(src, s3, catalog, template="{base_dir_underscore}-{filename}", delete=True,
             force=True)
    assert sorted(remote_tree(s3)) == ["b-y.jpg"] and r.deleted == 1


def test_catalog_rebuilt_from_remote_metadata_skips_unchanged(src: Path, s3: S3Backend,
                                                              tmp_path: Path) -> None:
    sync(src, s3, Catalog(str(tmp_path / "old.sqlite")))
    fresh = Catalog(str(tmp_path / "new.sqlite"))
    r = sync(src, s3, fresh, delete=True)
    assert r.transfer.uploaded == 0 and r.deleted == 0
    assert {a.reason for a in r.plan.actions} == {"unchanged (matches the remote object's hash)"}


# --- the command line ---------------------------------------------------------------------


def hoard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env},
                          stdin=subprocess.DEVNULL)


def test_cli_whole_bucket_must_be_named_twice(src: Path, moto_endpoint: str, s3_bucket: str,
                                              tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": moto_endpoint}
    cat = ["--catalog", str(tmp_path / "c.sqlite")]
    r = hoard("sync", str(src), f"s3://{s3_bucket}", "--delete", *cat, env=env)
    assert r.returncode == 2 and "--delete-whole-bucket" in r.stderr
    ok = hoard("sync", str(src), f"s3://{s3_bucket}", "--delete", "--delete-whole-bucket",
               s3_bucket, *cat, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "deleted=0 delete_withheld=0" in ok.stdout


def test_cli_withheld_deletes_exit_6_and_say_why(src: Path, moto_endpoint: str, s3_bucket: str,
                                                 tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": moto_endpoint}
    url = f"s3://{s3_bucket}/p"
    cat = ["--catalog", str(tmp_path / "c.sqlite")]
    assert hoard("sync", str(src), url, *cat, env=env).returncode == 0
    shutil.rmtree(src / "d0")
    dry = hoard("sync", str(src), url, "--delete", "--dry-run", *cat, env=env)
    assert dry.returncode == 6
    assert dry.stdout.count("delete   p/d0/") == 5
    assert "5 to delete" in dry.stdout
    r = hoard("sync", str(src), url, "--delete", *cat, env=env)
    assert r.returncode == 6
    assert "deletes withheld: 5 of 10 objects would be deleted" in r.stderr
    assert "deleted=0 delete_withheld=5" in r.stdout
    plain = hoard("sync", str(src), url, *cat, env=env)
    assert plain.returncode == 0 and "extras=5" in plain.stdout
    assert "extra: p/d0/f0.txt is not in the source" in plain.stderr


def test_cli_reports_early_deletion_before_anything_happens(
        tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> None:
    src = make_tree(tmp_path / "src", {"a": "1", "b": "2"})
    env = {"AWS_ENDPOINT_URL": moto_endpoint}
    url = f"s3://{s3_bucket}/cold"
    cat = ["--catalog", str(tmp_path / "c.sqlite")]
    assert hoard("sync", str(src), url, "--tier", "deep_archive", *cat, env=env).returncode == 0
    (src / "b").unlink()
    r = hoard("sync", str(src), url, "--delete", "--force", "--dry-run", *cat, env=env)
    assert "early deletion: cold/b is in deep_archive, stored 0 days ago" in r.stderr
    assert "as if it had been stored 180 days" in r.stderr


# --- the property: after a sync, the prefix is the source -------------------------------------

names = st.text(alphabet="abcxyz-_.é", min_size=1, max_size=6).filter(
    lambda n: n not in (".", ".."))
trees = st.dictionaries(st.lists(names, min_size=1, max_size=3).map("/".join),
                        st.binary(max_size=64), max_size=8)


def _clean(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would need a name to be both a file and a folder."""
    out: dict[str, bytes] = {}
    for path in sorted(tree, key=len):
        parts = path.split("/")
        if any("/".join(parts[:i]) in out for i in range(1, len(parts))):
            continue
        if any(k.startswith(path + "/") for k in out):
            continue
        out[path] = tree[path]
    return out


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=trees, after=trees)
def test_property_sync_makes_the_prefix_equal_the_source(
        before: dict[str, bytes], after: dict[str, bytes], tmp_path: Path, moto_endpoint: str
) -> None:
    bucket = f"hoard-prop-{hashlib.md5(os.urandom(8)).hexdigest()[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    b = S3Backend(bucket, endpoint_url=moto_endpoint)
    root = tmp_path / bucket
    catalog = Catalog(str(root) + ".sqlite")
    for tree in (_clean(before), _clean(after)):
        if root.exists():
            shutil.rmtree(root)
        root.mkdir()
        make_tree(root, tree)  # type: ignore[arg-type]
        r = sync(root, b, catalog, delete=True, force=True, allow_empty_source=True)
        assert r.failed == 0
        assert remote_tree(b) == {k: v for k, v in tree.items()}
    b.close()



def test_keys_out_of_scan_order_are_marched_in_key_order(tmp_path: Path, s3: S3Backend,
                                                        catalog: Catalog) -> None:
    # Scan order a/z.txt, b/m.txt, c/a.txt; key order a.txt, m.txt, z.txt (sorted on disk).
    src = make_tree(tmp_path / "src", {"a/z.txt": "z", "b/m.txt": "m", "c/a.txt": "a"})
    first = sync(src, s3, catalog, template="{filename}")
    assert (first.transfer.uploaded, first.failed) == (3, 0)
    (src / "b/m.txt").unlink()
    (src / "c/b.txt").write_text("b")
    second = sync(src, s3, catalog, template="{filename}", delete=True, max_delete="50%")
    assert (second.transfer.uploaded, second.skipped, second.deleted) == (1, 2, 1)
    assert remote_tree(s3) == {"a.txt": b"a", "b.txt": b"b", "z.txt": b"z"}
