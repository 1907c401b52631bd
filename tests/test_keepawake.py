"""Keep awake: requested when a workflow's job starts, released when it ends, fails or is
interrupted, never for a dry run; where no mechanism exists, a warning and the run goes on.
Also: a stop between files records the job as interrupted, and the rerun continues."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hoard.catalog import Catalog
from hoard.config import Workflow, load_config
from hoard.errors import SourceMissing
from hoard.keepawake import Unavailable, WakepyInhibitor, kept_awake
from hoard.model import Action
from hoard.report import NullReporter
from hoard.workflows import Runner, run_workflow
from tests.conftest import make_tree


class FakeInhibitor:
    """Records every request; ``available=False`` plays a machine without a mechanism."""

    def __init__(self, available: bool = True) -> None:
        self.available = available
        self.events: list[str] = []

    @property
    def held(self) -> bool:
        return bool(self.events) and self.events[-1].startswith("acquire")

    def acquire(self, reason: str) -> None:
        if not self.available:
            self.events.append("unavailable")
            raise Unavailable("no D-Bus session bus")
        self.events.append(f"acquire {reason}")

    def release(self) -> None:
        self.events.append("release")


class Watching(NullReporter):
    """Notes whether the machine was kept awake while each file was transferred, and can
    stop the run (like SIGTERM) or blow up (like Ctrl-C) after some files."""

    def __init__(self, inhibitor: FakeInhibitor, stop: threading.Event | None = None,
                 stop_after: int = 0, explode_after: int = 0) -> None:
        super().__init__()
        self.inhibitor = inhibitor
        self.stop = stop
        self.stop_after = stop_after
        self.explode_after = explode_after
        self.awake_during: list[bool] = []

    def transferred(self, action: Action, ok: bool, bytes_sent: int, error: str) -> None:
        self.awake_during.append(self.inhibitor.held)
        if self.stop is not None and len(self.awake_during) == self.stop_after:
            self.stop.set()
        if self.explode_after and len(self.awake_during) == self.explode_after:
            raise KeyboardInterrupt


def workflow(tmp_path: Path, extra: str = "", files: int = 3) -> Workflow:
    make_tree(tmp_path / "src", {f"f{i:03d}.txt": f"file {i}" for i in range(files)})
    path = tmp_path / "hoard.toml"
    path.write_text(f'[workflows.w]\nsources = ["{tmp_path}/src"]\nto = "{tmp_path}/out"\n'
                    f"workers = 1\n{extra}")
    return load_config(str(path), {}).workflow("w")


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    c = Catalog(str(tmp_path / "catalog.sqlite"))
    yield c  # type: ignore[misc]
    c.close()


def test_requested_for_the_job_and_released_when_it_ends(tmp_path: Path, cat: Catalog) -> None:
    inhibitor = FakeInhibitor()
    reporter = Watching(inhibitor)
    done = run_workflow(workflow(tmp_path), Runner(cat, time.time_ns, reporter,
                                                   inhibitor=inhibitor))
    assert done.outcome == "ok" and done.kept_awake
    assert reporter.awake_during == [True, True, True]
    assert inhibitor.events == ["acquire hoard workflow w", "release"]


def test_released_when_the_job_fails(tmp_path: Path, cat: Catalog) -> None:
    wf = workflow(tmp_path)
    (tmp_path / "src").rename(tmp_path / "unmounted")
    inhibitor = FakeInhibitor()
    with pytest.raises(SourceMissing):
        run_workflow(wf, Runner(cat, time.time_ns, NullReporter(), inhibitor=inhibitor))
    assert inhibitor.events == ["acquire hoard workflow w", "release"]
    job = cat.jobs()[0]
    assert (job["workflow"], job["outcome"]) == ("w", "failed")
    assert job["error"].endswith("src does not exist")


def test_released_when_the_job_is_interrupted(tmp_path: Path, cat: Catalog) -> None:
    inhibitor = FakeInhibitor()
    with pytest.raises(KeyboardInterrupt):
        run_workflow(workflow(tmp_path), Runner(cat, time.time_ns,
                                                Watching(inhibitor, explode_after=1),
                                                inhibitor=inhibitor))
    assert inhibitor.events == ["acquire hoard workflow w", "release"]
    assert cat.jobs()[0]["outcome"] == "interrupted"


def test_not_requested_for_a_dry_run_or_when_the_workflow_says_no(tmp_path: Path,
                                                                  cat: Catalog) -> None:
    inhibitor = FakeInhibitor()
    run_workflow(workflow(tmp_path), Runner(cat, time.time_ns, NullReporter(),
                                            inhibitor=inhibitor), dry_run=True)
    run_workflow(workflow(tmp_path / "b", "keep_awake = false\n"),
                 Runner(cat, time.time_ns, NullReporter(), inhibitor=inhibitor))
    assert inhibitor.events == []


def test_no_mechanism_is_a_warning_and_the_run_goes_on(tmp_path: Path, cat: Catalog) -> None:
    inhibitor = FakeInhibitor(available=False)
    warnings: list[str] = []
    done = run_workflow(workflow(tmp_path), Runner(cat, time.time_ns, NullReporter(),
                                                   inhibitor=inhibitor, warn=warnings.append))
    assert (done.outcome, done.kept_awake) == ("ok", False)
    assert inhibitor.events == ["unavailable"]  # nothing to release
    assert warnings == ["cannot keep the machine awake (no D-Bus session bus); it may sleep "
                        "during the transfer"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: wakepy needs D-Bus")
def test_wakepy_without_a_session_bus_warns_instead_of_crashing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    warnings: list[str] = []
    with kept_awake(WakepyInhibitor(), "test", warnings.append) as awake:
        assert awake is False
    assert len(warnings) == 1
    assert "DBUS_SESSION_BUS_ADDRESS is not set" in warnings[0]


def test_a_stop_between_files_records_the_job_interrupted_and_the_rerun_continues(
        tmp_path: Path, cat: Catalog) -> None:
    wf = workflow(tmp_path, files=6)
    stop = threading.Event()
    inhibitor = FakeInhibitor()
    done = run_workflow(wf, Runner(cat, time.time_ns, Watching(inhibitor, stop, stop_after=2),
                                   stop, inhibitor))
    assert done.outcome == "interrupted"
    # the files in flight when the stop came finished (one worker: at most one more queued)
    uploaded = done.result.transfer.uploaded
    assert 2 <= uploaded <= 3
    assert done.result.transfer.not_attempted == 6 - uploaded
    job = cat.job(done.job_id or 0)
    assert job is not None and (job["outcome"], job["uploaded"]) == ("interrupted", uploaded)
    assert inhibitor.events[-1] == "release"
    again = run_workflow(wf, Runner(cat, time.time_ns, NullReporter()))
    assert again.outcome == "ok"
    assert (again.result.transfer.uploaded, again.result.skipped) == (6 - uploaded, uploaded)


class StopWhenExamined(NullReporter):
    """Stops the run once planning has decided its first batch, before it hands on any
    upload of it (a push of one `{rel_path}` source uploads as it plans)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def examined(self, files: int) -> None:
        self.stop.set()


def test_a_stop_before_the_first_upload_starts_none(tmp_path: Path, cat: Catalog) -> None:
    stop = threading.Event()
    done = run_workflow(workflow(tmp_path, files=4),
                        Runner(cat, time.time_ns, StopWhenExamined(stop), stop))
    assert done.outcome == "interrupted"
    assert (done.result.transfer.uploaded, done.result.transfer.not_attempted) == (0, 4)
    assert not (tmp_path / "out").exists()


def test_a_stop_while_planning_records_the_job_interrupted(tmp_path: Path,
                                                           cat: Catalog) -> None:
    from hoard.errors import Interrupted

    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted, match="stopped while planning"):
        run_workflow(workflow(tmp_path), Runner(cat, time.time_ns, NullReporter(), stop))
    job = cat.jobs()[0]
    assert (job["outcome"], job["uploaded"]) == ("interrupted", 0)
    assert job["error"].startswith("stopped while planning, before ")


def test_cli_warns_without_a_mechanism_and_no_keep_awake_turns_it_off(tmp_path: Path) -> None:
    workflow(tmp_path)
    env = {**os.environ}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    base = [sys.executable, "-m", "hoard", "run", "w", "--config", str(tmp_path / "hoard.toml"),
            "--catalog", str(tmp_path / "c.sqlite")]
    warned = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120)
    assert warned.returncode == 0, warned.stderr
    if sys.platform.startswith("linux"):
        assert "warning: cannot keep the machine awake" in warned.stderr
    quiet = subprocess.run([*base, "--no-keep-awake"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert "keep the machine awake" not in quiet.stderr
    assert "uploaded=0 skipped=3" in quiet.stdout
