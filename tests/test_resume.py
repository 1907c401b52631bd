"""Large files that survive a crash, against a real S3 server (SeaweedFS, which verifies
Content-MD5 and x-amz-checksum-crc64nvme) behind a counting, fault-injecting proxy: a real
`hoard` process is killed with SIGKILL mid-file and run again.

Each run that sends parts first checks, once, that the store refuses a part whose checksum does
not match (an upload of its own: one CreateMultipartUpload, one part numbered PROBE_PART, one
AbortMultipartUpload); ``real_parts`` leaves that part out."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import boto3
import pytest

from hoard.backends.s3_parts import PROBE_PART
from tests.faultproxy import FaultProxy, Request

MiB = 1 << 20
PART = 5 * MiB
MULTIPART = ["--multipart-threshold", "5MiB", "--part-size", "5MiB"]


@pytest.fixture
def client(seaweed_endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=seaweed_endpoint)


def hoard_cmd(src: Path, bucket: str, catalog: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hoard", "push", str(src), "--to", f"s3://{bucket}/v",
            "--catalog", str(catalog), *MULTIPART, *extra]


def env_for(proxy: FaultProxy, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL": proxy.url,  # type: ignore[attr-defined]
            "HOARD_LOG_FILE": str(tmp_path / "hoard.log")}


def journaled(catalog: Path) -> set[int]:
    if not catalog.exists():
        return set()
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
    try:
        return {r[0] for r in db.execute("SELECT number FROM upload_parts")}
    except sqlite3.OperationalError:
        return set()
    finally:
        db.close()


def kill_mid_file(cmd: list[str], env: dict[str, str], catalog: Path, parts: int) -> set[int]:
    """Start hoard, SIGKILL it once ``parts`` parts are journaled; return the journaled parts."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if len(journaled(catalog)) >= parts:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        else:
            raise AssertionError("the upload never got going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return journaled(catalog)


def rerun(proxy: FaultProxy, cmd: list[str], env: dict[str, str]
          ) -> subprocess.CompletedProcess[str]:
    """Run hoard again at full speed with fresh proxy counts; it must succeed."""
    proxy.delay_s.clear()
    proxy.reset_counts()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def real_parts(proxy: FaultProxy) -> list[int]:
    """The numbers of the parts sent, without the checksum probe's part."""
    return [n for n in proxy.parts_sent() if n != PROBE_PART]


def probes(proxy: FaultProxy) -> list[Request]:
    return [r for r in proxy.requests if r.part == PROBE_PART]


def read_object(client: object, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]


def unfinished(client: object, bucket: str) -> list[dict[str, object]]:
    resp = client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    return list(resp.get("Uploads", []))


@pytest.fixture
def big(tmp_path: Path) -> Path:
    src = tmp_path / "videos"
    src.mkdir()
    (src / "trip.mp4").write_bytes(os.urandom(12 * PART))
    return src


def test_killed_mid_file_resumes_and_sends_only_missing_parts(
        big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str,
        client: object) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    done_before = kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env,
                                catalog, parts=4)
    assert 4 <= len(done_before) < 12
    assert len(unfinished(client, seaweed_bucket)) == 1

    r = rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    sent_again = real_parts(proxy)
    assert set(sent_again).isdisjoint(done_before)  # stored and journaled: never sent again
    assert sorted(sent_again) == sorted(set(range(1, 13)) - done_before)
    assert all("x-amz-checksum-crc64nvme" in r.headers for r in proxy.requests if r.part)
    # the same upload goes on; the one Create (and Abort) is the checksum probe's own upload
    assert len(probes(proxy)) == 1 and proxy.count("ListParts") == 1
    assert proxy.count("CreateMultipartUpload") == proxy.count("AbortMultipartUpload") == 1
    assert "resumed=1" in r.stdout
    assert f"resumed {len(done_before) * 5}.0MiB of 60.0MiB" in r.stderr
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == (big / "trip.mp4").read_bytes()
    assert unfinished(client, seaweed_bucket) == []
    assert journaled(catalog) == set()


def test_changed_source_aborts_the_old_upload_and_starts_fresh(
        big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str,
        client: object) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env, catalog, 3)
    [old] = unfinished(client, seaweed_bucket)
    with open(big / "trip.mp4", "ab") as fh:
        fh.write(os.urandom(MiB))

    r = rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    assert proxy.count("AbortMultipartUpload") == 2  # the old upload and the probe's
    assert sorted(real_parts(proxy)) == list(range(1, 14))
    assert "resumed" not in r.stdout
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == (big / "trip.mp4").read_bytes()
    assert old["UploadId"] not in [u["UploadId"] for u in unfinished(client, seaweed_bucket)]
    assert unfinished(client, seaweed_bucket) == []


def test_a_part_whose_local_bytes_differ_is_sent_again(
        big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str,
        client: object) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    done_before = kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env,
                                catalog, parts=3)
    changed = min(done_before)
    path = big / "trip.mp4"
    st = path.stat()
    with open(path, "r+b") as fh:  # same size, same inode, and the old mtime put back
        fh.seek((changed - 1) * PART + 1000)
        fh.write(b"edited in place")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    sent_again = set(real_parts(proxy))
    assert changed in sent_again
    assert sent_again.isdisjoint(done_before - {changed})
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == path.read_bytes()


def test_an_upload_the_store_forgot_starts_fresh(big: Path, tmp_path: Path, proxy: FaultProxy,
                                                 seaweed_bucket: str, client: object) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env, catalog, 3)
    [old] = unfinished(client, seaweed_bucket)
    client.abort_multipart_upload(Bucket=seaweed_bucket, Key=old["Key"],  # type: ignore[attr-defined]
                                  UploadId=old["UploadId"])
    rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    assert proxy.count("CreateMultipartUpload") == 2  # the fresh upload and the probe's
    assert sorted(real_parts(proxy)) == list(range(1, 13))
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == (big / "trip.mp4").read_bytes()


def test_a_corrupted_part_or_object_is_refused_by_the_store_and_sent_again(
        tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(2 * PART + 123))
    (src / "small.txt").write_bytes(b"small file " * 100)
    corrupted: Counter[str] = Counter()

    def corrupt_first_of_each(req: Request) -> str:
        if req.part == PROBE_PART:
            return "pass"
        if req.operation in ("UploadPart", "PutObject") and not corrupted[req.operation]:
            corrupted[req.operation] += 1
            return "corrupt"
        return "pass"

    proxy.decide = corrupt_first_of_each
    r = subprocess.run(hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite"),
                       env=env_for(proxy, tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    refused = [(op, status) for op, status, body in proxy.statuses if b"BadDigest" in body]
    # the corrupted PUT (Content-MD5), the corrupted part (CRC64NVME), and the probe's part
    assert sorted(refused) == [("PutObject", 400), ("UploadPart", 400), ("UploadPart", 400)]
    assert sorted(real_parts(proxy)) == [1, 1, 2, 3]
    puts = [q for q in proxy.requests if q.operation == "PutObject"]
    assert len(puts) == 2 and all("awscrt/" in q.headers["user-agent"] for q in puts)
    for name in ("large.bin", "small.txt"):
        assert read_object(client, seaweed_bucket, f"v/{name}") == (src / name).read_bytes()


def test_a_throttling_storm_with_connection_resets_still_finishes_byte_exact(
        tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(24):
        (src / f"photo{i:02d}.jpg").write_bytes(os.urandom(2000 + i))
    (src / "video.mp4").write_bytes(os.urandom(3 * PART))
    attempts: Counter[tuple[str, str, int | None]] = Counter()

    def unlucky(key: tuple[str, str, int | None]) -> int:
        return zlib.crc32(repr(key).encode()) % 10

    # the same faults every run: each photo goes up in one PutObject, so at least these happen
    photos = [("PutObject", f"photo{i:02d}.jpg", None) for i in range(24)]
    slowed = sum(unlucky(k) < 5 for k in photos)
    reset = sum(unlucky(k) < 3 for k in photos)
    assert slowed >= 5 and reset >= 3  # the storm is a storm

    def storm(req: Request) -> str:
        if req.operation not in ("PutObject", "UploadPart"):
            return "pass"
        key = (req.operation, req.path.rsplit("/", 1)[-1], req.part)  # not the random bucket
        attempts[key] += 1
        if unlucky(key) < 5 and attempts[key] == 1:
            return "slowdown"
        if unlucky(key) < 3 and attempts[key] == 2:
            return "reset"
        return "pass"

    proxy.decide = storm
    log = tmp_path / "hoard.log"
    r = subprocess.run(hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite", "--workers", "4",
                                 "--json"),
                       env=env_for(proxy, tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["uploaded"] == 25
    assert proxy.outcomes["slowdown"] >= slowed and proxy.outcomes["reset"] >= reset
    assert "store is throttling" in log.read_text()
    for path in src.iterdir():
        assert hashlib.sha256(read_object(client, seaweed_bucket, f"v/{path.name}")).digest() \
            == hashlib.sha256(path.read_bytes()).digest()


def test_parts_go_up_in_parallel_with_bounded_memory(tmp_path: Path, proxy: FaultProxy,
                                                     seaweed_bucket: str, client: object) -> None:
    src = tmp_path / "src"
    src.mkdir()
    size = 240 * MiB
    with open(src / "huge.bin", "wb") as fh:
        fh.truncate(size)  # sparse: reads as zeros, costs no disk
    proxy.delay_s["UploadPart"] = 0.05
    probe = ("import resource, subprocess, sys; "
             "rc = subprocess.run(sys.argv[1:]).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")
    cmd = [sys.executable, "-c", probe,
           *hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite", "--workers", "3", "-q")]
    r = subprocess.run(cmd, env=env_for(proxy, tmp_path), capture_output=True, text=True,
                       timeout=300)
    max_rss_kib, rc = r.stdout.strip().splitlines()[-1].split()
    assert rc == "0", r.stderr
    assert 2 <= proxy.max_in_flight["UploadPart"] <= 6
    assert int(max_rss_kib) * 1024 < size / 2  # never the whole file; at most 2 x workers parts
    head = client.head_object(Bucket=seaweed_bucket, Key="v/huge.bin")  # type: ignore[attr-defined]
    assert head["ContentLength"] == size


def test_cleanup_aborts_only_what_hoard_no_longer_tracks(
        big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str,
        client: object) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env, catalog, 2)
    stray = client.create_multipart_upload(Bucket=seaweed_bucket,  # type: ignore[attr-defined]
                                           Key="v/abandoned.bin")["UploadId"]
    elsewhere = client.create_multipart_upload(Bucket=seaweed_bucket,  # type: ignore[attr-defined]
                                               Key="other/x.bin")["UploadId"]
    base = [sys.executable, "-m", "hoard", "cleanup", f"s3://{seaweed_bucket}/v", "--catalog",
            str(catalog)]

    recent = subprocess.run([*base, "--older-than", "1h"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert "aborted=0 kept_tracked=1 kept_recent=1" in recent.stdout

    dry = subprocess.run([*base, "--older-than", "0s", "--dry-run"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "would abort" in dry.stdout and "v/abandoned.bin" in dry.stdout
    assert len(unfinished(client, seaweed_bucket)) == 3

    real = subprocess.run([*base, "--older-than", "0s"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert "aborted=1 kept_tracked=1 kept_recent=0" in real.stdout
    left = {u["UploadId"] for u in unfinished(client, seaweed_bucket)}
    assert stray not in left and elsewhere in left and len(left) == 2

    proxy.delay_s.clear()
    resumed = subprocess.run(hoard_cmd(big, seaweed_bucket, catalog), env=env,
                             capture_output=True, text=True, timeout=120)
    assert "resumed=1" in resumed.stdout
