"""Which checksum a part carries, against real servers. hoard sends CRC64NVME instead of
Content-MD5 only to a store it has just seen refuse a part whose CRC64NVME does not match
(``hoard.backends.s3_parts``); SeaweedFS checks it, moto's server does not, and a proxy
answering the probe itself stands for any other store that takes a body unchecked."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import boto3
import pytest
from awscrt import checksums
from botocore.config import Config

from hoard.backends.s3_parts import PROBE_PART
from tests.faultproxy import FaultProxy, Request
from tests.test_resume import (
    PART,
    env_for,
    hoard_cmd,
    kill_mid_file,
    probes,
    read_object,
    real_parts,
    rerun,
    unfinished,
)


def crc64nvme(data: bytes) -> str:
    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


def accept_probe(req: Request) -> str:
    return "accept" if req.part == PROBE_PART else "pass"


def part_headers(proxy: FaultProxy) -> list[set[str]]:
    """For each real part sent, which of the two checksum headers it carried."""
    names = {"content-md5", "x-amz-checksum-crc64nvme"}
    return [set(r.headers) & names for r in proxy.requests if r.part and r.part != PROBE_PART]


@pytest.fixture
def big(tmp_path: Path) -> Path:
    src = tmp_path / "videos"
    src.mkdir()
    (src / "trip.mp4").write_bytes(os.urandom(12 * PART))
    return src


@pytest.fixture
def client(seaweed_endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=seaweed_endpoint)


def test_seaweedfs_refuses_a_part_or_object_whose_crc64nvme_does_not_match(
    seaweed_endpoint: str, seaweed_bucket: str
) -> None:
    """The premise, shown without hoard: the server the tests use checks the header."""
    s3 = boto3.client(
        "s3",
        endpoint_url=seaweed_endpoint,
        config=Config(request_checksum_calculation="when_required"),
    )
    data, other = os.urandom(PART), os.urandom(PART)
    upload = s3.create_multipart_upload(
        Bucket=seaweed_bucket, Key="k", ChecksumAlgorithm="CRC64NVME"
    )["UploadId"]
    with pytest.raises(s3.exceptions.ClientError, match="BadDigest"):
        s3.upload_part(
            Bucket=seaweed_bucket,
            Key="k",
            UploadId=upload,
            PartNumber=1,
            Body=data,
            ChecksumCRC64NVME=crc64nvme(other),
        )
    with pytest.raises(s3.exceptions.ClientError, match="BadDigest"):
        s3.put_object(Bucket=seaweed_bucket, Key="o", Body=data, ChecksumCRC64NVME=crc64nvme(other))
    part = s3.upload_part(
        Bucket=seaweed_bucket,
        Key="k",
        UploadId=upload,
        PartNumber=1,
        Body=data,
        ChecksumCRC64NVME=crc64nvme(data),
    )
    assert part["ChecksumCRC64NVME"] == crc64nvme(data)


def test_a_store_that_checks_crc64nvme_gets_it_and_refuses_a_corrupted_part(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(3 * PART + 7))
    corrupted: list[int] = []

    def corrupt_part_2_once(req: Request) -> str:
        if req.part == 2 and not corrupted:
            corrupted.append(2)
            return "corrupt"
        return "pass"

    proxy.decide = corrupt_part_2_once
    r = subprocess.run(
        hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite"),
        env=env_for(proxy, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    [probe] = probes(proxy)
    assert probe.size == 5 and "x-amz-checksum-crc64nvme" in probe.headers
    assert part_headers(proxy) == [{"x-amz-checksum-crc64nvme"}] * 5  # 4 parts, 2 sent twice
    refused = [(op, status) for op, status, body in proxy.statuses if b"BadDigest" in body]
    assert refused == [("UploadPart", 400), ("UploadPart", 400)]  # the probe, the corrupted one
    assert sorted(real_parts(proxy)) == [1, 2, 2, 3, 4]
    assert read_object(client, seaweed_bucket, "v/large.bin") == (src / "large.bin").read_bytes()
    assert unfinished(client, seaweed_bucket) == []  # the probe's upload was aborted


def test_a_store_that_takes_a_mismatched_part_gets_content_md5(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(2 * PART + 7))
    proxy.decide = accept_probe
    r = subprocess.run(
        hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite"),
        env=env_for(proxy, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert part_headers(proxy) == [{"content-md5"}] * 3
    creates = [q for q in proxy.requests if q.operation == "CreateMultipartUpload"]
    assert ["x-amz-checksum-algorithm" in q.headers for q in creates] == [True, False]
    assert "carry Content-MD5 checksums" in (tmp_path / "hoard.log").read_text()
    assert read_object(client, seaweed_bucket, "v/large.bin") == (src / "large.bin").read_bytes()
    assert unfinished(client, seaweed_bucket) == []


def test_a_store_that_does_not_know_the_algorithm_gets_content_md5(
    tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(2 * PART + 7))

    def refuse_checksum_algorithm(req: Request) -> str:
        create = req.operation == "CreateMultipartUpload"
        return "invalid" if create and "x-amz-checksum-algorithm" in req.headers else "pass"

    proxy.decide = refuse_checksum_algorithm
    r = subprocess.run(
        hoard_cmd(src, seaweed_bucket, tmp_path / "c.sqlite"),
        env=env_for(proxy, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert probes(proxy) == []
    assert part_headers(proxy) == [{"content-md5"}] * 3
    assert read_object(client, seaweed_bucket, "v/large.bin") == (src / "large.bin").read_bytes()


def test_moto_which_does_not_check_crc64nvme_gets_content_md5(
    moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "large.bin").write_bytes(os.urandom(2 * PART + 7))
    p = FaultProxy(moto_endpoint)
    with p.running() as url:
        p.url = url  # type: ignore[attr-defined]
        r = subprocess.run(
            hoard_cmd(src, s3_bucket, tmp_path / "c.sqlite"),
            env=env_for(p, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    assert len(probes(p)) == 1
    assert part_headers(p) == [{"content-md5"}] * 3


def test_an_upload_begun_with_md5_parts_resumes_with_md5(
    big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object
) -> None:
    """Parts journaled with Content-MD5 (a store that took the probe, or an older hoard) are
    kept, and the rest of that upload goes on with Content-MD5 even where CRC64NVME is checked:
    one upload keeps one algorithm."""
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.decide = accept_probe
    proxy.delay_s["UploadPart"] = 0.25
    done_before = kill_mid_file(
        hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env, catalog, parts=3
    )
    proxy.decide = lambda r: "pass"
    rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    assert sorted(real_parts(proxy)) == sorted(set(range(1, 13)) - done_before)
    assert part_headers(proxy) == [{"content-md5"}] * (12 - len(done_before))
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == (big / "trip.mp4").read_bytes()
    assert unfinished(client, seaweed_bucket) == []


def test_crc64nvme_parts_are_not_resumed_on_a_store_that_no_longer_checks_them(
    big: Path, tmp_path: Path, proxy: FaultProxy, seaweed_bucket: str, client: object
) -> None:
    catalog = tmp_path / "catalog.sqlite"
    env = env_for(proxy, tmp_path)
    proxy.delay_s["UploadPart"] = 0.25
    kill_mid_file(hoard_cmd(big, seaweed_bucket, catalog, "--workers", "2"), env, catalog, 3)
    [old] = unfinished(client, seaweed_bucket)
    proxy.decide = accept_probe
    rerun(proxy, hoard_cmd(big, seaweed_bucket, catalog), env)
    assert sorted(real_parts(proxy)) == list(range(1, 13))
    assert part_headers(proxy) == [{"content-md5"}] * 12
    assert old["UploadId"] not in [u["UploadId"] for u in unfinished(client, seaweed_bucket)]
    assert read_object(client, seaweed_bucket, "v/trip.mp4") == (big / "trip.mp4").read_bytes()
    assert unfinished(client, seaweed_bucket) == []
