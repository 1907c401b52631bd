"""One run at a time per catalog: a real second process is refused with the running job's name,
or waits with --wait-lock; a lock left by a SIGKILLed process is cleared and its job marked
interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoard.catalog import Catalog
from hoard.errors import CatalogBusy, Interrupted
from hoard.lock import CatalogLock, hold_catalog, lock_path
from tests.conftest import make_tree

HOLDER = """
import sys, time
from hoard.catalog import Catalog
from hoard.lock import hold_catalog
catalog = Catalog(sys.argv[1])
lock = hold_catalog(catalog, "hoard run photos", time.time_ns, lambda s: time.sleep(s) or False)
job = catalog.start_job("push", {"workflow": "photos"}, time.time_ns(), workflow="photos")
print("held", job, flush=True)
sys.stdin.readline()  # hold until told
lock.release()
print("released", flush=True)
"""


def never_sleep(_seconds: float) -> bool:
    raise AssertionError("must not wait")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """Another process holding the catalog's lock while its job runs: (process, job, catalog)."""
    catalog = str(tmp_path / "catalog.sqlite")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, catalog], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "held", line
    yield proc, int(line[1]), catalog
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def hoard(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_a_second_writer_is_refused_with_the_running_job(
        holder: tuple[subprocess.Popen[str], int, str]) -> None:
    proc, job, path = holder
    catalog = Catalog(path)
    try:
        with pytest.raises(CatalogBusy) as caught:
            hold_catalog(catalog, "hoard push", time.time_ns, never_sleep)
    finally:
        catalog.close()
    message = str(caught.value)
    assert message.startswith(f"the catalog {path} is in use by `hoard run photos` "
                              f"(job {job}, pid {proc.pid}, since ")
    assert caught.value.exit_code == 8


@pytest.mark.parametrize("command", ["push", "sync", "restore", "run"])
def test_every_writing_command_is_refused_while_another_runs(
        tmp_path: Path, holder: tuple[subprocess.Popen[str], int, str], command: str) -> None:
    proc, job, catalog = holder
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    (tmp_path / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{src}"]\nto = "{tmp_path}/out"\n')
    args = {
        "push": ["push", str(src), "--to", str(tmp_path / "out")],
        "sync": ["sync", str(src), str(tmp_path / "out")],
        "restore": ["restore", str(tmp_path / "out"), "--to", str(tmp_path / "back")],
        "run": ["run", "w", "--config", str(tmp_path / "hoard.toml")],
    }[command]
    r = hoard(*args, "--catalog", catalog)
    assert r.returncode == 8, r.stderr
    assert f"is in use by `hoard run photos` (job {job}, pid {proc.pid}, since" in r.stderr
    assert "--wait-lock SECONDS" in r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "back").exists()


def test_a_dry_run_and_readers_do_not_need_the_lock(
        tmp_path: Path, holder: tuple[subprocess.Popen[str], int, str]) -> None:
    _, _, catalog = holder
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    dry = hoard("push", str(src), "--to", str(tmp_path / "out"), "--dry-run",
                "--catalog", catalog)
    assert dry.returncode == 0, dry.stderr
    jobs = hoard("jobs", "--catalog", catalog)
    assert jobs.returncode == 0 and "running" in jobs.stdout


def test_a_second_writer_waits_with_wait_lock(
        tmp_path: Path, holder: tuple[subprocess.Popen[str], int, str]) -> None:
    proc, job, catalog = holder
    src = make_tree(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    waiting = subprocess.Popen(
        [sys.executable, "-m", "hoard", "push", str(src), "--to", str(tmp_path / "out"),
         "--catalog", catalog, "--wait-lock", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        assert waiting.poll() is None  # still waiting, nothing copied
        assert not (tmp_path / "out").exists()
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err
    assert f"waiting for `hoard run photos` (job {job}, pid {proc.pid}" in err
    assert "uploaded=2" in out


def test_a_lock_left_by_a_killed_process_is_cleared_and_its_job_marked_interrupted(
        holder: tuple[subprocess.Popen[str], int, str], caplog: pytest.LogCaptureFixture) -> None:
    proc, job, path = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "hoard run photos" in Path(lock_path(path)).read_text()  # the record stayed behind
    catalog = Catalog(path)
    try:
        with caplog.at_level("WARNING", logger="hoard.lock"):
            lock = hold_catalog(catalog, "hoard push", time.time_ns, never_sleep)
        assert lock.stale is not None and lock.stale.pid == proc.pid
        assert f"left by `hoard run photos` (pid {proc.pid})" in caplog.text
        row = catalog.job(job)
        assert row is not None
        assert (row["outcome"], row["error"]) == (
            "interrupted", "the process ended without recording the end")
        lock.release()
        assert Path(lock_path(path)).read_text() == ""  # released cleanly: no record
        again = hold_catalog(catalog, "hoard push", time.time_ns, never_sleep)
        assert again.stale is None
        again.release()
    finally:
        catalog.close()


def test_a_running_job_of_a_live_process_is_not_marked_interrupted(
        holder: tuple[subprocess.Popen[str], int, str]) -> None:
    _, job, path = holder
    catalog = Catalog(path)
    try:
        assert catalog.interrupt_orphans(time.time_ns()) == []
        row = catalog.job(job)
        assert row is not None and row["outcome"] == "running"
    finally:
        catalog.close()


def test_waiting_gives_up_after_wait_s_and_stops_when_asked(
        holder: tuple[subprocess.Popen[str], int, str]) -> None:
    _, _, path = holder
    slept: list[float] = []

    def sleep(seconds: float) -> bool:
        slept.append(seconds)
        return False

    with pytest.raises(CatalogBusy, match=r"waited 2\.5s"):
        CatalogLock(lock_path(path), "hoard push", time.time_ns, sleep).acquire(wait_s=2.5)
    assert slept == [1.0, 1.0, 0.5]
    with pytest.raises(Interrupted):
        CatalogLock(lock_path(path), "hoard push", time.time_ns, lambda _s: True).acquire(10)


def test_an_in_memory_catalog_has_no_lock_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(":memory:")
    monkeypatch.chdir(tmp_path)
    with hold_catalog(catalog, "hoard push", time.time_ns, never_sleep):
        pass
    assert list(tmp_path.iterdir()) == []
    catalog.close()
