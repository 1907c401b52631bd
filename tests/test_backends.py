"""One conformance suite for every backend: the local folder, the memory fake, and S3 against a
real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoard import metadata as meta
from hoard.backends.base import Backend
from hoard.backends.localfs import LocalBackend
from hoard.backends.memory import MemoryBackend
from hoard.backends.registry import RemoteOptions, open_backend, parse_remote
from hoard.backends.s3 import S3Backend, part_size_for
from hoard.backends.wrappers import RetryPolicy
from hoard.errors import (
    BackendError,
    BucketNotFound,
    DiskFull,
    InvalidKey,
    NotFound,
    RemoteUrlError,
    Unreachable,
)

MiB = 1 << 20


@pytest.fixture(params=["local", "memory", "s3", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        b: Backend = LocalBackend(str(tmp_path / "remote"))
    elif request.param == "memory":
        b = MemoryBackend("conformance")
    elif request.param == "azure":
        from hoard.backends.azure import AzureBackend

        b = AzureBackend(request.getfixturevalue("az_container"),
                         multipart_threshold_bytes=6 * MiB, part_bytes=5 * MiB)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        b = S3Backend(bucket, endpoint_url=endpoint, multipart_threshold_bytes=6 * MiB,
                      part_bytes=5 * MiB)
    yield b
    b.close()


def _file(tmp_path: Path, data: bytes, name: str = "src.bin") -> str:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _put(b: Backend, key: str, path: str, metadata: dict[str, str] | None = None,
         tier: str | None = None) -> None:
    b.put(key, path, os.path.getsize(path), metadata or {}, tier)


def _read(b: Backend, key: str, offset: int = 0, length: int | None = None) -> bytes:
    stream = b.open(key, offset, length)
    try:
        return stream.read()
    finally:
        stream.close()


def test_put_then_stat_and_read_back(backend: Backend, tmp_path: Path) -> None:
    data = b"hello hoard\n" * 100
    md = {"hoard-hash": "blake3:abc", "hoard-path": "photos/%C3%A9t%C3%A9.jpg"}
    result = backend.put("photos/2025/a.jpg", _file(tmp_path, data), len(data), md, None)
    assert result.tier == backend.capabilities.default_tier
    info = backend.stat("photos/2025/a.jpg")
    assert info.size == len(data)
    assert info.tier == backend.capabilities.default_tier
    assert info.etag
    assert dict(info.metadata) == md
    assert _read(backend, "photos/2025/a.jpg") == data
    if isinstance(backend, S3Backend):
        assert backend.crt_requests == 1  # the small put went through the CRT data path


def test_put_overwrites(backend: Backend, tmp_path: Path) -> None:
    _put(backend, "k", _file(tmp_path, b"first", "1"))
    _put(backend, "k", _file(tmp_path, b"second!", "2"), {"hoard-hash": "x"})
    assert _read(backend, "k") == b"second!"
    assert backend.stat("k").size == 7
    assert backend.stat("k").metadata["hoard-hash"] == "x"


def test_ranged_read(backend: Backend, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    _put(backend, "r.bin", _file(tmp_path, data))
    assert _read(backend, "r.bin", 10, 20) == data[10:30]
    assert _read(backend, "r.bin", 1000) == data[1000:]


def test_missing_object_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.stat("no/such/key")
    with pytest.raises(NotFound):
        backend.open("no/such/key").read()


def test_list_is_sorted_in_byte_order_and_filtered_by_prefix(backend: Backend,
                                                             tmp_path: Path) -> None:
    keys = ["b", "a/c/d", "a-c", "a/b", "é/x", "x:y", "a/c/e"]
    src = _file(tmp_path, b"x")
    for key in keys:
        _put(backend, key, src)
    listed = [o.key for o in backend.list()]
    assert listed == sorted(keys, key=lambda k: k.encode())
    assert [o.key for o in backend.list("a/")] == ["a/b", "a/c/d", "a/c/e"]
    assert [o.key for o in backend.list("a/c")] == ["a/c/d", "a/c/e"]
    assert [o.key for o in backend.list("nothing/")] == []
    assert all(o.size == 1 for o in backend.list())


def test_delete_is_idempotent(backend: Backend, tmp_path: Path) -> None:
    src = _file(tmp_path, b"x")
    _put(backend, "d/one", src)
    _put(backend, "d/two", src)
    backend.delete(["d/one", "d/missing"])
    backend.delete(["d/one"])
    assert [o.key for o in backend.list()] == ["d/two"]


def test_every_declared_tier_can_be_written(backend: Backend, tmp_path: Path) -> None:
    src = _file(tmp_path, b"tiered")
    for tier in backend.capabilities.tiers:
        _put(backend, f"t/{tier}", src, tier=tier)
        assert backend.stat(f"t/{tier}").tier == tier
    with pytest.raises(BackendError):
        _put(backend, "t/bogus", src, tier="no-such-tier")


def test_metadata_written_by_hoard_reads_back(backend: Backend, tmp_path: Path) -> None:
    from hoard.model import LocalFile

    f = LocalFile(path="/home/u/Pictures/été/ß 1.jpg", root="/home/u/Pictures",
                  rel_path="été/ß 1.jpg", size=3, mtime_ns=1_700_000_000_123_456_789,
                  ctime_ns=0, atime_ns=0, birthtime_ns=None, inode=1, dev=1)
    _put(backend, "m", _file(tmp_path, b"abc"), meta.for_file(f, "blake3:00ff"))
    recorded = meta.read(backend.stat("m").metadata)
    assert recorded is not None
    assert (recorded.hash, recorded.rel_path, recorded.source, recorded.size,
            recorded.mtime_ns) == ("blake3:00ff", "été/ß 1.jpg", "/home/u/Pictures", 3,
                                   1_700_000_000_123_456_789)


# --- S3 specifics -------------------------------------------------------------------------------


@pytest.fixture
def s3(moto_endpoint: str, s3_bucket: str) -> Iterator[S3Backend]:
    b = S3Backend(s3_bucket, endpoint_url=moto_endpoint, multipart_threshold_bytes=6 * MiB,
                  part_bytes=5 * MiB)
    yield b
    b.close()


def test_s3_large_file_goes_up_in_parts(s3: S3Backend, tmp_path: Path) -> None:
    data = os.urandom(11 * MiB + 123)
    result = s3.put("big.bin", _file(tmp_path, data), len(data), {"hoard-hash": "h"}, "glacier")
    assert result.parts == 3
    assert result.etag.endswith("-3")  # a multipart ETag is not an MD5 of the content
    info = s3.stat("big.bin")
    assert (info.size, info.tier, info.metadata["hoard-hash"]) == (len(data), "glacier", "h")
    assert info.warm is False
    uploads = s3._client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    assert uploads == []


def test_s3_cold_object_reads_as_not_warm(s3: S3Backend, tmp_path: Path) -> None:
    from hoard.errors import NotWarm

    _put(s3, "cold", _file(tmp_path, b"frozen"), tier="deep_archive")
    with pytest.raises(NotWarm):
        s3.open("cold").read()


def test_part_size_keeps_parts_under_ten_thousand() -> None:
    assert part_size_for(10 * MiB, 16 * MiB) == 16 * MiB
    five_tib = 5 * (1 << 40)
    size = part_size_for(five_tib, 16 * MiB)
    assert -(-five_tib // size) <= 10_000
    assert size % MiB == 0


def test_s3_missing_bucket_is_bucket_not_found(moto_endpoint: str) -> None:
    b = S3Backend("hoard-no-such-bucket", endpoint_url=moto_endpoint)
    with pytest.raises(BucketNotFound):
        list(b.list())


def test_s3_unreachable_endpoint_fails_fast_and_clearly(tmp_path: Path) -> None:
    from tests.conftest import free_port

    remote = parse_remote("s3://some-bucket/p")
    b = open_backend(remote, RemoteOptions(endpoint_url=f"http://127.0.0.1:{free_port()}"),
                     RetryPolicy(attempts=2))
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        list(b.list("p/"))
    assert time.monotonic() - started < 20
    assert "127.0.0.1" in str(err.value)
    assert err.value.stops_run


# --- local folder specifics ---------------------------------------------------------------------


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path / "remote"))
    _put(b, "a/b.txt", _file(tmp_path, b"data"))
    names = {p.name for p in (tmp_path / "remote" / "a").iterdir()}
    assert names == {"b.txt"}
    assert [o.key for o in b.list()] == ["a/b.txt"]  # the metadata sidecar is not listed


def test_local_refuses_keys_that_leave_the_root(tmp_path: Path) -> None:
    b = LocalBackend(str(tmp_path / "remote"))
    for key in ("../escape", "a/../../x", ".hoard/meta/x", "/abs"):
        with pytest.raises(InvalidKey):
            _put(b, key, _file(tmp_path, b"x"))
    assert not (tmp_path / "escape").exists()


def test_local_missing_parent_folder_is_bucket_not_found(tmp_path: Path) -> None:
    with pytest.raises(BucketNotFound):
        LocalBackend(str(tmp_path / "not" / "mounted"))


def test_local_full_disk_is_disk_full_and_keeps_nothing_partial(tmp_path: Path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=256k tmpfs {mnt} 2>/dev/null"):
        pytest.skip("needs root to mount a small tmpfs")
    b = LocalBackend(str(mnt / "remote"))
    try:
        _put(b, "fits", _file(tmp_path, os.urandom(64 * 1024), "small"))
        with pytest.raises(DiskFull) as err:
            _put(b, "too-big", _file(tmp_path, os.urandom(512 * 1024), "big"))
        assert err.value.stops_run
        assert [o.key for o in b.list()] == ["fits"]
        leftovers = [p for p in (mnt / "remote").rglob("*") if p.name.startswith(".hoard-tmp")]
        assert leftovers == []
    finally:
        b.close()  # it holds the root open (for syncfs); umount refuses a busy file system
        assert os.system(f"umount {mnt}") == 0


def test_remote_urls() -> None:
    assert parse_remote("s3://bucket/a/b/").prefix == "a/b"
    assert parse_remote("s3://bucket").prefix == ""
    assert parse_remote("file:///mnt/nas").store == "/mnt/nas"
    assert parse_remote("relative/dir").store == os.path.abspath("relative/dir")
    for bad in ("s3:///nobucket", "ftp://x/y", "file://host/x", "gs://bucket/x", "az:///x"):
        with pytest.raises(RemoteUrlError):
            parse_remote(bad)
    with pytest.raises(InvalidKey):
        parse_remote("s3://bucket/../x")


def test_copy_keeps_bytes_metadata_and_tier(backend: Backend, tmp_path: Path) -> None:
    tier = backend.capabilities.tiers[-1] if backend.capabilities.scheme == "s3" else None
    if tier in backend.capabilities.cold_tiers:
        tier = "standard_ia"
    _put(backend, "orig/a.txt", _file(tmp_path, b"copy me"), {"hoard-hash": "h1"}, tier)
    backend.copy("orig/a.txt", "backup/2026/orig/a.txt")
    copied = backend.stat("backup/2026/orig/a.txt")
    assert _read(backend, "backup/2026/orig/a.txt") == b"copy me"
    assert copied.metadata["hoard-hash"] == "h1"
    assert copied.tier == backend.stat("orig/a.txt").tier
    assert _read(backend, "orig/a.txt") == b"copy me"


def test_conditional_delete_leaves_a_changed_object_alone(backend: Backend,
                                                          tmp_path: Path) -> None:
    _put(backend, "c/old", _file(tmp_path, b"one", "1"))
    _put(backend, "c/same", _file(tmp_path, b"two", "2"))
    seen = {o.key: o.etag for o in backend.list("c/")}
    time.sleep(0.01)
    _put(backend, "c/old", _file(tmp_path, b"changed after the listing", "3"))
    kept = backend.delete(["c/old", "c/same", "c/never-existed"],
                          if_match={**seen, "c/never-existed": "x"})
    assert kept == ["c/old"]
    assert [o.key for o in backend.list("c/")] == ["c/old"]
    assert _read(backend, "c/old") == b"changed after the listing"
