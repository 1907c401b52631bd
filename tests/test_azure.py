"""Azure Blob Storage against Azurite on 127.0.0.1, through a counting proxy: tiers set in the
upload request, metadata read from listings, archived blobs needing a rehydrate, block uploads
resumed after SIGKILL, and the same commands as S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from hoard.backends.azure import AzureBackend
from hoard.errors import NotWarm
from tests.conftest import azurite_connection_string, make_tree
from tests.faultproxy import FaultProxy, Request
from tests.test_resume import journaled

MiB = 1 << 20


@pytest.fixture
def proxy(azurite_endpoint: str) -> Iterator[tuple[FaultProxy, str]]:
    p = FaultProxy(azurite_endpoint)
    with p.running() as url:
        yield p, azurite_connection_string(url)


def comp(r: Request) -> str:
    return r.query.get("comp", [""])[0]


def hoard(*args: str, conn: str, catalog: Path,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn, "HOARD_CATALOG": str(catalog)}
    return subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def blobs(conn: str, container: str) -> dict[str, tuple[str, dict[str, str]]]:
    c = BlobServiceClient.from_connection_string(conn).get_container_client(container)
    return {b.name: (str(b.blob_tier), dict(b.metadata or {}))
            for b in c.list_blobs(include=["metadata"])}


def test_tier_and_metadata_travel_in_the_upload_request(
        tmp_path: Path, az_container: str, proxy: tuple[FaultProxy, str]) -> None:
    p, conn = proxy
    src = make_tree(tmp_path / "src", {"small.jpg": "x" * 100, "big.mov": os.urandom(7 * MiB)})
    r = hoard("push", str(src), "--to", f"az://{az_container}/media", "--tier", "cool",
              "--multipart-threshold", "6MiB", "--part-size", "2MiB", conn=conn,
              catalog=tmp_path / "c.sqlite")
    assert r.returncode == 0, r.stderr
    assert sum(1 for q in p.requests if comp(q) == "tier") == 0  # no second call to set tiers
    assert sum(1 for q in p.requests if comp(q) == "block") == 4
    found = blobs(conn, az_container)
    assert {k: v[0] for k, v in found.items()} == {"media/big.mov": "Cool",
                                                   "media/small.jpg": "Cool"}
    assert found["media/small.jpg"][1]["hoard_hash"].startswith("blake3:")
    assert found["media/big.mov"][1]["hoard_path"] == "big.mov"


def test_listings_carry_metadata_so_a_new_machine_needs_no_request_per_blob(
        tmp_path: Path, az_container: str, proxy: tuple[FaultProxy, str]) -> None:
    p, conn = proxy
    src = make_tree(tmp_path / "src", {f"f{i:02d}.txt": str(i) for i in range(30)})
    url = f"az://{az_container}/docs"
    assert hoard("push", str(src), "--to", url, conn=conn,
                 catalog=tmp_path / "old.sqlite").returncode == 0
    p.reset_counts()
    r = hoard("push", str(src), "--to", url, "--json", conn=conn,
              catalog=tmp_path / "new.sqlite")
    assert json.loads(r.stdout)["uploaded"] == 0
    assert [q.method for q in p.requests] == ["GET"]  # one listing page, no HEAD per blob
    assert comp(p.requests[0]) == "list"


def test_reading_an_archived_blob_means_it_needs_a_rehydrate(tmp_path: Path,
                                                             az_container: str) -> None:
    b = AzureBackend(az_container)
    f = tmp_path / "f"
    f.write_bytes(b"frozen")
    b.put("cold/f", str(f), 6, {"hoard-hash": "x"}, "archive")
    assert b.stat("cold/f").warm is False
    with pytest.raises(NotWarm, match="rehydrate"):
        b.open("cold/f").read()
    b.thaw(["cold/f"], 7, "expedited")
    assert b.stat("cold/f").warm  # Azurite rehydrates at once; Azure takes hours
    assert b.open("cold/f").read() == b"frozen"


def test_restore_rehydrates_archived_blobs_across_runs(tmp_path: Path, az_container: str,
                                                       azurite_endpoint: str) -> None:
    conn = azurite_connection_string(azurite_endpoint)
    cat = tmp_path / "c.sqlite"
    src = make_tree(tmp_path / "src", {"a.txt": "alpha", "b/c.txt": "charlie"})
    url = f"az://{az_container}/arch"
    assert hoard("push", str(src), "--to", url, "--tier", "archive", conn=conn,
                 catalog=cat).returncode == 0
    out = tmp_path / "out"
    first = hoard("restore", url, "--to", str(out), conn=conn, catalog=cat)
    assert first.returncode == 7 and "add --thaw" in first.stdout
    second = hoard("restore", url, "--to", str(out), "--thaw", "standard", conn=conn,
                   catalog=cat)
    assert "thaw_requested=2 pending=2" in second.stdout
    third = hoard("restore", url, "--to", str(out), conn=conn, catalog=cat)
    assert third.returncode == 0, third.stderr
    assert (out / "b/c.txt").read_text() == "charlie" and (out / "a.txt").read_text() == "alpha"


def test_an_archived_blob_is_replaced_only_when_asked(tmp_path: Path, az_container: str,
                                                      azurite_endpoint: str) -> None:
    conn = azurite_connection_string(azurite_endpoint)
    cat = tmp_path / "c.sqlite"
    src = make_tree(tmp_path / "src", {"doc.txt": "version 1"})
    url = f"az://{az_container}/a"
    assert hoard("push", str(src), "--to", url, "--tier", "archive", conn=conn,
                 catalog=cat).returncode == 0
    (src / "doc.txt").write_text("version 2, longer")
    refused = hoard("push", str(src), "--to", url, "--tier", "archive", conn=conn, catalog=cat)
    assert refused.returncode == 1
    assert "Azure refuses to overwrite archived blobs; pass --replace-archived" in refused.stderr
    replaced = hoard("push", str(src), "--to", url, "--tier", "archive", "--replace-archived",
                     conn=conn, catalog=cat)
    assert replaced.returncode == 0, replaced.stderr
    b = AzureBackend(az_container)
    assert b.stat("a/doc.txt").size == len("version 2, longer")


def test_block_upload_resumes_after_sigkill(tmp_path: Path, az_container: str,
                                            proxy: tuple[FaultProxy, str]) -> None:
    p, conn = proxy
    src = tmp_path / "src"
    src.mkdir()
    (src / "movie.mkv").write_bytes(os.urandom(12 * MiB))
    cat = tmp_path / "c.sqlite"
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn, "HOARD_CATALOG": str(cat)}
    cmd = [sys.executable, "-m", "hoard", "push", str(src), "--to", f"az://{az_container}/v",
           "--multipart-threshold", "1MiB", "--part-size", "1MiB", "--workers", "2"]
    p.delay_s["PUT"] = 0.2
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(journaled(cat)) < 4:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done_before = journaled(cat)
    assert 4 <= len(done_before) < 12
    p.delay_s.clear()
    p.reset_counts()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "resumed=1" in r.stdout
    staged = [q for q in p.requests if comp(q) == "block"]
    assert len(staged) == 12 - len(done_before)
    data = AzureBackend(az_container).open("v/movie.mkv").read()
    assert data == (src / "movie.mkv").read_bytes()


def test_tiers_sync_and_missing_credentials(tmp_path: Path, az_container: str,
                                            azurite_endpoint: str) -> None:
    conn = azurite_connection_string(azurite_endpoint)
    cat = tmp_path / "c.sqlite"
    tiers = hoard("tiers", f"az://{az_container}", conn=conn, catalog=cat)
    assert [ln.split()[0] for ln in tiers.stdout.splitlines()] == ["hot", "cool", "cold",
                                                                  "archive"]
    src = make_tree(tmp_path / "src", {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"})
    url = f"az://{az_container}/projects"
    assert hoard("sync", str(src), url, conn=conn, catalog=cat).returncode == 0
    (src / "e").unlink()
    r = hoard("sync", str(src), url, "--delete", conn=conn, catalog=cat)
    assert r.returncode == 0 and "deleted=1" in r.stdout
    assert sorted(blobs(conn, az_container)) == [f"projects/{n}" for n in "abcd"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    none = subprocess.run([sys.executable, "-m", "hoard", "push", str(src), "--to", url,
                           "--catalog", str(cat)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert none.returncode == 3
    assert "AZURE_STORAGE_CONNECTION_STRING" in none.stderr
