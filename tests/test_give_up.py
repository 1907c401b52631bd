"""A store that fails every upload a temporary way (a server error, through all the retries)
stops the run after GIVE_UP_AFTER files in a row, says why, and leaves the rest not attempted
for the rerun; failures among successes, or failures of another kind, do not stop it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.errors import BackendError, Transient
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import NullReporter
from hoard.streak import GIVE_UP_AFTER
from tests.conftest import make_tree
from tests.faultproxy import FaultProxy, Request


def push(src: Path, backend: MemoryBackend, catalog: Catalog, workers: int = 4) -> PushResult:
    settings = PushSettings(sources=(str(src),), remote=backend.url, workers=workers)
    return run_push(settings, backend, catalog, NullReporter(), time.time_ns)


def failing_puts(fail: object) -> tuple[MemoryBackend, list[str]]:
    """A store whose n-th put raises ``fail(n)`` (None: the put goes through)."""
    puts: list[str] = []
    lock = threading.Lock()

    def faults(op: str, key: str) -> None:
        if op != "put":
            return
        with lock:
            puts.append(key)
            n = len(puts)
        exc = fail(n)  # type: ignore[operator]
        if exc is not None:
            raise exc

    return MemoryBackend("m", faults=faults), puts


def test_a_store_failing_every_upload_stops_the_run_after_a_streak(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"d{i % 4}/f{i:03d}": str(i) for i in range(200)})
    catalog = Catalog(str(tmp_path / "c.sqlite"))
    mem, puts = failing_puts(lambda n: Transient("uploading: InternalError (500)"))
    r = push(src, mem, catalog)
    assert r.outcome == "aborted"
    st = r.transfer
    assert st.uploaded == 0
    assert f"failed {GIVE_UP_AFTER} files in a row" in st.stopped_by
    assert "InternalError (500)" in st.stopped_by
    # the files in flight when the streak was seen still finish: at most the rest of the
    # results collected with the one that ended it, and a window (2 x 4 workers) more
    assert GIVE_UP_AFTER <= len(puts) <= GIVE_UP_AFTER + 4 * 4
    assert st.not_attempted == 200 - len(puts)
    assert r.failed == 200  # tried and failed, or not attempted: all counted as failed


def test_failures_among_successes_or_of_another_kind_do_not_stop_the_run(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:03d}": str(i) for i in range(60)})
    catalog = Catalog(str(tmp_path / "c1.sqlite"))
    # every file but each GIVE_UP_AFTER-th fails a temporary way: never GIVE_UP_AFTER in a row
    # (one upload at a time, so the results come in the order of the puts)
    mem, puts = failing_puts(
        lambda n: None if n % GIVE_UP_AFTER == 0 else Transient("InternalError (500)")
    )
    r = push(src, mem, catalog, workers=1)
    assert not r.transfer.stopped_by and r.transfer.not_attempted == 0
    assert len(puts) == 60 and r.transfer.uploaded == 60 // GIVE_UP_AFTER
    # a refusal that is not temporary (it says nothing about the store's health) is per file
    catalog = Catalog(str(tmp_path / "c2.sqlite"))
    mem, puts = failing_puts(lambda n: BackendError("InvalidArgument: refused"))
    r = push(src, mem, catalog)
    assert not r.transfer.stopped_by and r.transfer.not_attempted == 0
    assert len(puts) == 60 and r.transfer.failed == 60


def test_a_store_answering_every_put_with_a_server_error_stops_the_push_soon(
    proxy: FaultProxy, seaweed_endpoint: str, tmp_path: Path
) -> None:
    """The case this was found in: SeaweedFS out of volumes answers every PUT with 500
    InternalError; 2,000 files took 16 minutes to fail one by one."""
    boto3.client("s3", endpoint_url=seaweed_endpoint).create_bucket(Bucket="full")
    src = make_tree(tmp_path / "src", {f"d{i % 5}/f{i:03d}": os.urandom(100) for i in range(120)})

    def decide(req: Request) -> str:
        return "internal" if req.method == "PUT" else "pass"

    proxy.decide = decide
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.url,  # type: ignore[attr-defined]
        "HOARD_LOG_FILE": str(tmp_path / "hoard.log"),
    }
    started = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "hoard", "push", str(src), "--to", "s3://full/x",
         "--catalog", str(tmp_path / "c.sqlite"), "--workers", "8"],
        capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    took = time.monotonic() - started
    assert p.returncode != 0
    assert f"stopped early: the store failed {GIVE_UP_AFTER} files in a row" in p.stderr
    assert "InternalError" in p.stderr and "run the same command again" in p.stderr
    m = re.search(r"(\d+) files were not attempted", p.stderr)
    assert m is not None and int(m.group(1)) > 0, p.stderr
    # every file tried was tried through all its attempts (one without waiting for it, then
    # put's six), and far from all files were tried
    assert proxy.outcomes["internal"] <= (120 - int(m.group(1))) * 7
    assert 120 - int(m.group(1)) <= 120 // 2
    assert took < 120, took


def test_a_store_answering_every_get_with_a_server_error_stops_the_restore_soon(
    proxy: FaultProxy, seaweed_endpoint: str, tmp_path: Path
) -> None:
    boto3.client("s3", endpoint_url=seaweed_endpoint).create_bucket(Bucket="sick")
    src = make_tree(tmp_path / "src", {f"d{i % 5}/f{i:03d}": os.urandom(100) for i in range(120)})
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.url,  # type: ignore[attr-defined]
        "HOARD_LOG_FILE": str(tmp_path / "hoard.log"),
        "HOARD_CATALOG": str(tmp_path / "c.sqlite"),
    }

    def hoard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hoard", *args], capture_output=True, text=True, env=env,
            timeout=180, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    assert hoard("push", str(src), "--to", "s3://sick/x").returncode == 0
    # every object's GET fails; the listing still answers
    proxy.decide = lambda r: "internal" if r.method == "GET" and r.path != "/sick" else "pass"
    out = tmp_path / "out"
    started = time.monotonic()
    p = hoard("restore", "s3://sick/x", "--to", str(out), "--workers", "8")
    took = time.monotonic() - started
    assert p.returncode == 1, p.stderr
    assert f"stopped early: the store failed {GIVE_UP_AFTER} files in a row" in p.stderr
    assert "InternalError" in p.stderr and "run the same command again" in p.stderr
    assert "restored=0 " in p.stdout and "failed=120 " in p.stdout
    assert took < 120, took
    assert not any(f.is_file() for f in out.rglob("*"))  # nothing placed, no temporary left
    proxy.reset_counts()
    doc = json.loads(hoard("restore", "s3://sick/x", "--to", str(out), "--json").stdout)
    assert doc["outcome"] == "aborted" and doc["restored"] == 0 and doc["failed"] == 120
    assert doc["stopped_by"].startswith(f"the store failed {GIVE_UP_AFTER} files in a row")
    tried = 120 - doc["not_attempted"]
    # the files in flight when the streak ends are tried too: a few at most
    assert GIVE_UP_AFTER <= tried <= 120 // 2 and len(doc["errors"]) == tried
    # all its attempts: one read without waiting for it, then open's six
    assert proxy.outcomes["internal"] <= tried * 7
    # the store recovers: the same command restores everything
    proxy.decide = lambda r: "pass"
    again = hoard("restore", "s3://sick/x", "--to", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["restored"] == 120
    for f in src.rglob("*"):
        if f.is_file():
            assert (out / f.relative_to(src)).read_bytes() == f.read_bytes()


def test_a_restore_stopped_by_a_failing_store_does_not_wait_for_its_thaws(
    moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """With --wait a restore polls its thaws until they are ready; once the store has failed
    GIVE_UP_AFTER downloads in a row it stops at once, its thaws left pending."""
    src = make_tree(
        tmp_path / "src",
        {**{f"warm/f{i:02d}": os.urandom(50) for i in range(24)}, "cold/a": "a", "cold/b": "b"},
    )
    env = {
        **os.environ,
        "HOARD_LOG_FILE": str(tmp_path / "hoard.log"),
        "HOARD_CATALOG": str(tmp_path / "c.sqlite"),
    }
    p = FaultProxy(moto_endpoint)
    with p.running() as url:
        env["AWS_ENDPOINT_URL"] = url

        def hoard(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "hoard", *args], capture_output=True, text=True,
                env=env, timeout=180, stdin=subprocess.DEVNULL,
            )  # fmt: skip

        to = f"s3://{s3_bucket}/x"
        assert hoard("push", str(src), "--to", to, "--include", "warm/**").returncode == 0
        cold = hoard("push", str(src), "--to", to, "--include", "cold/**", "--tier", "glacier")
        assert cold.returncode == 0, cold.stderr
        # every object's GET fails; listing, HEAD and the thaw requests go through
        def decide(req: Request) -> str:
            listing = "list-type" in req.query
            return "internal" if req.method == "GET" and not listing else "pass"

        p.decide = decide
        r = hoard(
            "restore", to, "--to", str(tmp_path / "out"), "--thaw", "standard", "--wait",
            "--poll-interval", "0.2s",
        )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert f"stopped early: the store failed {GIVE_UP_AFTER} files in a row" in r.stderr
    assert "thaw_requested=2 pending=2" in r.stdout  # not waited for, not downloaded
