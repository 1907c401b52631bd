"""`hoard daemon` driven by an injected clock: workflows run at their times, one at a time, a
missed run runs once at start, a stop ends the loop — with fake runs, and with real runs of two
workflows against a local folder and the S3 server; and the daemon as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hoard import __version__
from hoard.catalog import Catalog
from hoard.config import load_config
from hoard.daemon import Daemon, LogReporter, locked_runs
from hoard.schedule import to_datetime, to_ns
from hoard.workflows import Runner
from tests.conftest import make_tree
from tests.test_keepawake import FakeInhibitor

NY = ZoneInfo("America/New_York")


class FakeClock:
    """Time that moves only when the daemon sleeps (or a run says it took a while)."""

    def __init__(self, start: datetime, stop: threading.Event) -> None:
        self.ns = to_ns(start)
        self.stop = stop
        self.alarms: list[tuple[int, Callable[[], None]]] = []

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)
        for at, fire in [a for a in self.alarms if a[0] <= self.ns]:
            self.alarms.remove((at, fire))
            fire()

    def sleep(self, seconds: float) -> bool:
        assert 0 < seconds <= 60, seconds  # never sleeps past a slot, never longer than a step
        self.advance(seconds)
        return self.stop.is_set()

    def at(self, when: datetime, fire: Callable[[], None]) -> None:
        self.alarms.append((to_ns(when), fire))

    def wall(self) -> str:
        return to_datetime(self.ns, NY).strftime("%m-%d %H:%M%z")


def workflow_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hoard.toml"
    path.write_text(text)
    return path


def fake_workflows(tmp_path: Path, **schedules: str) -> list:  # type: ignore[type-arg]
    text = "".join(
        f'[workflows.{name}]\nsources = ["{tmp_path}"]\nto = "{tmp_path}/out"\n'
        f'schedule = "{cron}"\ntimezone = "America/New_York"\n'
        for name, cron in schedules.items())
    return list(load_config(str(workflow_file(tmp_path, text)), {}).workflows.values())


def run_fake(tmp_path: Path, start: datetime, until: datetime, took_s: float,
             last: dict[str, datetime] | None = None, **schedules: str) -> list[str]:
    """Serve fake workflows; each run 'takes' ``took_s``. Returns 'name@time(trigger)'."""
    stop = threading.Event()
    clock = FakeClock(start, stop)
    ran: list[str] = []

    def run(wf: object, trigger: str) -> str:
        ran.append(f"{wf.name}@{clock.wall()}" + ("(missed)" if trigger == "missed run" else ""))  # type: ignore[attr-defined]
        clock.advance(took_s)
        return "ok"

    last_ns = {k: to_ns(v) for k, v in (last or {}).items()}
    daemon = Daemon(fake_workflows(tmp_path, **schedules), run, last_ns.get, clock, clock.sleep,
                    stop)
    daemon.serve(until_ns=to_ns(until))
    assert [h[2] for h in daemon.history] == ["ok"] * len(ran)
    return ran


def test_two_workflows_run_at_their_times_one_at_a_time_through_a_dst_night(
        tmp_path: Path) -> None:
    ran = run_fake(tmp_path, datetime(2026, 3, 6, 12, tzinfo=NY),
                   datetime(2026, 3, 9, 12, tzinfo=NY), took_s=600, docs="0 2 * * *",
                   photos="30 2 * * *")
    assert ran == [
        "docs@03-07 02:00-0500", "photos@03-07 02:30-0500",
        # 02:00 and 02:30 do not exist on March 8: both are due at 03:00; docs runs first and
        # takes 10 minutes, photos runs right after it, not at the same time
        "docs@03-08 03:00-0400", "photos@03-08 03:10-0400",
        "docs@03-09 02:00-0400", "photos@03-09 02:30-0400",
    ]


def test_a_workflow_never_overlaps_itself_slots_passed_during_its_run_are_skipped(
        tmp_path: Path) -> None:
    ran = run_fake(tmp_path, datetime(2026, 6, 1, 0, 0, 30, tzinfo=NY),
                   datetime(2026, 6, 1, 1, 10, tzinfo=NY), took_s=25 * 60, often="*/10 * * * *")
    # 00:20 and 00:30 pass while the 00:10 run still goes on: skipped, not queued
    assert ran == ["often@06-01 00:10-0400", "often@06-01 00:40-0400"]


def test_a_run_missed_while_the_machine_was_off_runs_once_at_start(tmp_path: Path) -> None:
    ran = run_fake(tmp_path, datetime(2026, 6, 10, 9, 0, tzinfo=NY),
                   datetime(2026, 6, 11, 12, 0, tzinfo=NY), took_s=60,
                   last={"nightly": datetime(2026, 6, 3, 2, 0, 1, tzinfo=NY),
                         "fresh": datetime(2026, 6, 10, 8, 0, tzinfo=NY)},
                   nightly="0 2 * * *", fresh="0 8 * * *", never="0 3 * * *")
    # nightly missed seven nights: one run now, then its normal slot; fresh ran at 08:00 today
    # (not missed); never has no run on record (not missed, waits for its slot)
    assert ran == ["nightly@06-10 09:00-0400(missed)", "nightly@06-11 02:00-0400",
                   "never@06-11 03:00-0400", "fresh@06-11 08:00-0400"]


def test_a_stop_ends_the_loop_after_the_current_run(tmp_path: Path) -> None:
    stop = threading.Event()
    clock = FakeClock(datetime(2026, 6, 1, 1, 59, tzinfo=NY), stop)
    ran: list[str] = []

    def run(wf: object, trigger: str) -> str:
        ran.append(wf.name)  # type: ignore[attr-defined]
        stop.set()  # SIGTERM arrives during the run
        return "interrupted"

    daemon = Daemon(fake_workflows(tmp_path, a="0 2 * * *", b="0 2 * * *"), run,
                    lambda _name: None, clock, clock.sleep, stop)
    daemon.serve(until_ns=to_ns(datetime(2026, 6, 3, tzinfo=NY)))
    assert ran == ["a"]  # b was due too, but nothing new starts after a stop
    assert daemon.history == [("a", "schedule", "interrupted")]


def test_a_failing_workflow_does_not_stop_the_daemon(tmp_path: Path) -> None:
    from hoard.errors import SourceMissing

    stop = threading.Event()
    clock = FakeClock(datetime(2026, 6, 1, 1, 59, tzinfo=NY), stop)

    def run(wf: object, trigger: str) -> str:
        if wf.name == "a":  # type: ignore[attr-defined]
            raise SourceMissing("/mnt/photos does not exist")
        return "ok"

    daemon = Daemon(fake_workflows(tmp_path, a="0 2 * * *", b="0 3 * * *"), run,
                    lambda _name: None, clock, clock.sleep, stop)
    daemon.serve(until_ns=to_ns(datetime(2026, 6, 2, 0, 0, tzinfo=NY)))
    assert daemon.history == [("a", "schedule", "failed"), ("b", "schedule", "ok")]


def test_the_daemon_runs_real_workflows_on_a_local_folder_and_s3_at_their_times(
        tmp_path: Path, moto_endpoint: str, s3_bucket: str, s3_client: object) -> None:
    docs = make_tree(tmp_path / "docs", {"a.txt": "alpha", "sub/b.txt": "beta"})
    photos = make_tree(tmp_path / "Pictures", {"2025/x.jpg": b"\xff\xd8" * 100,
                                                "2025/y.jpg": b"\xff\xd9" * 90, "skip.txt": "n"})
    archive = tmp_path / "archive"
    config = load_config(str(workflow_file(tmp_path, f"""
[remotes.s3]
url = "s3://{s3_bucket}/photos"
endpoint_url = "{moto_endpoint}"

[workflows.docs]
sources = ["{docs}"]
to = "{archive}"
template = "{{date}}/{{rel_path}}"
schedule = "0 2 * * *"
timezone = "America/New_York"

[workflows.photos]
sources = [{{ pattern = "{photos}/**/*.jpg", base = "{photos}" }}]
to = "s3"
tier = "standard_ia"
schedule = "30 3 * * *"
timezone = "America/New_York"
""")), os.environ)
    stop = threading.Event()
    clock = FakeClock(datetime(2026, 3, 6, 20, 0, tzinfo=NY), stop)
    clock.at(datetime(2026, 3, 7, 12, 0, tzinfo=NY),
             lambda: (docs / "new.txt").write_text("added in the afternoon"))
    inhibitor = FakeInhibitor()
    catalog = Catalog(str(tmp_path / "catalog.sqlite"))
    try:
        runner = Runner(catalog, clock, LogReporter(), stop, inhibitor)
        runs = locked_runs(runner, clock.sleep, {}, config.path)
        daemon = Daemon(config.workflows.values(), runs, catalog.last_started, clock,
                        clock.sleep, stop)
        daemon.serve(until_ns=to_ns(datetime(2026, 3, 8, 12, 0, tzinfo=NY)))
        jobs = list(reversed(catalog.jobs()))
    finally:
        catalog.close()

    def wall(ns: int) -> str:
        return to_datetime(ns, NY).strftime("%m-%d %H:%M%z")

    assert [(j["workflow"], wall(j["started_ns"]), j["outcome"], j["uploaded"], j["skipped"])
            for j in jobs] == [
        ("docs", "03-07 02:00-0500", "ok", 2, 0),
        ("photos", "03-07 03:30-0500", "ok", 2, 0),
        ("docs", "03-08 03:00-0400", "ok", 3, 0),  # DST night: 02:00 runs at 03:00
        ("photos", "03-08 03:30-0400", "ok", 0, 2),
    ]
    assert all(j["settings"]["trigger"] == "schedule" for j in jobs)
    assert daemon.history == [("docs", "schedule", "ok"), ("photos", "schedule", "ok")] * 2
    # {date} is the job's date, from the daemon's clock: a new folder each night, and the file
    # added on the 7th in the afternoon only in the second
    days = [datetime.fromtimestamp(j["started_ns"] / 1e9).strftime("%Y-%m-%d")
            for j in jobs if j["workflow"] == "docs"]
    assert [sorted(str(p.relative_to(archive / d)) for p in (archive / d).rglob("*.txt"))
            for d in days] == [["a.txt", "sub/b.txt"], ["a.txt", "new.txt", "sub/b.txt"]]
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]  # type: ignore[attr-defined]
    assert [(o["Key"], o["StorageClass"]) for o in listed] == [
        ("photos/2025/x.jpg", "STANDARD_IA"), ("photos/2025/y.jpg", "STANDARD_IA")]
    assert inhibitor.events == ["acquire hoard workflow docs", "release",
                                "acquire hoard workflow photos", "release"] * 2


def hoard_proc(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hoard", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_daemon_process_refuses_a_twin_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a.txt": "a"})
    config = workflow_file(tmp_path, f'[workflows.w]\nsources = ["{tmp_path}/src"]\n'
                                     f'to = "{tmp_path}/out"\nschedule = "0 2 * * *"\n')
    log = tmp_path / "hoard.log"
    args = ["daemon", "--config", str(config), "--catalog", str(tmp_path / "c.sqlite"),
            "--log-file", str(log)]
    first = hoard_proc(*args)
    try:
        wait_for(lambda: log.exists() and f"hoard daemon {__version__} started" in log.read_text())
        assert "workflow w: next run at" in log.read_text()
        twin = subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True,
                              text=True, timeout=60)
        assert twin.returncode == 8, twin.stderr
        assert "is in use by `hoard daemon` (pid " in twin.stderr
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert "SIGTERM: stopping" in err
    assert "hoard daemon stopped" in log.read_text()


@pytest.mark.parametrize("when", ["idle"])
def test_daemon_without_scheduled_workflows_says_so(tmp_path: Path, when: str) -> None:
    config = workflow_file(tmp_path, f'[workflows.w]\nsources = ["{tmp_path}"]\n'
                                     f'to = "{tmp_path}/out"\n')
    r = subprocess.run([sys.executable, "-m", "hoard", "daemon", "--config", str(config),
                        "--catalog", str(tmp_path / "c.sqlite")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "has a schedule; nothing to run" in r.stderr
