"""`hoard init`, `hoard run`, `hoard workflows` and `hoard daemon --install` as a user runs them:
real processes, a real home folder, the local-folder and S3 remotes."""

from __future__ import annotations

import json
import os
import plistlib
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from hoard.catalog import Catalog
from hoard.config import load_config
from hoard.schedule import to_ns
from hoard.workflows import statuses
from tests.conftest import make_tree


class User:
    """A home folder, a config folder and a working folder; runs `hoard` as this user would."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.xdg = root / "xdg"
        self.work = root / "work"
        for folder in (self.home, self.xdg, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        self.catalog = str(root / "catalog.sqlite")
        self.log = root / "hoard.log"
        self.env = {**os.environ, "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.xdg),
                    "HOARD_CATALOG": self.catalog, "HOARD_LOG_FILE": str(self.log)}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hoard", *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env, cwd=self.work,
                              stdin=subprocess.DEVNULL)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "hoard", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.work,
                                stdin=subprocess.DEVNULL)

    def jobs(self) -> list[dict[str, object]]:
        return list(reversed(json.loads(self("jobs", "--json").stdout)))


@pytest.fixture
def user(tmp_path: Path) -> User:
    return User(tmp_path)


def test_init_writes_an_example_that_runs_as_written(user: User) -> None:
    docs = make_tree(user.home / "Documents", {"taxes.pdf": b"%PDF" * 10, "notes/a.txt": "a",
                                               ".DS_Store": "junk"})
    r = user("init")
    assert r.returncode == 0, r.stderr
    config = user.xdg / "hoard" / "hoard.toml"
    assert f"wrote {config}: workflow `example` archives {docs} to ~/hoard-archive" in r.stdout
    assert "hoard run example --dry-run" in r.stdout
    text = config.read_text()
    assert 'sources = ["~/Documents"]' in text and "# [remotes.r2]" in text
    assert load_config(str(config), {}).workflow("example").remote.name == "local"

    dry = user("run", "example", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    month = datetime.fromtimestamp((docs / "taxes.pdf").stat().st_mtime).strftime("%Y/%m")
    assert f"upload   backup/{month}/taxes.pdf  <- {docs}/taxes.pdf  (new)" in dry.stdout
    assert "2 to upload" in dry.stdout and "nothing was moved (dry run)" in dry.stdout
    assert not (user.home / "hoard-archive").exists()
    assert user.jobs() == []  # a dry run records nothing

    real = user("run", "example")
    assert real.returncode == 0, real.stderr
    assert "uploaded=2 skipped=0 failed=0" in real.stdout
    assert (user.home / "hoard-archive" / "backup" / month / "notes" / "a.txt").read_text() == "a"
    assert not list((user.home / "hoard-archive").rglob(".DS_Store"))

    listed = user("workflows")
    assert listed.returncode == 0, listed.stderr
    assert "example" in listed.stdout and "0 2 * * *" in listed.stdout
    assert "job 1 ok" in listed.stdout

    again = user("init")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert user("init", "--force").returncode == 0


def test_init_without_a_documents_folder_archives_the_current_folder(user: User) -> None:
    make_tree(user.work, {"draft.txt": "d"})
    path = user.work / "mine.toml"
    r = user("init", "--config", str(path), "--archive", str(user.home / "arch"))
    assert r.returncode == 0, r.stderr
    assert "--config" in r.stdout  # the next steps name the file
    run = user("run", "example", "--config", str(path))
    assert run.returncode == 0, run.stderr
    assert list((user.home / "arch").rglob("draft.txt"))


def test_a_job_is_the_resolved_workflow_and_runs_again_exactly(
        user: User, moto_endpoint: str, s3_bucket: str, s3_client: object) -> None:
    make_tree(user.home / "Pictures", {"2025/a.jpg": b"\xff\xd8a" * 30, "2025/b.jpg": "bb",
                                       "2025/c.txt": "text"})
    config = user.work / "hoard.toml"
    config.write_text(
        '[remotes.store]\nurl = "s3://${BUCKET}/backup"\nendpoint_url = "${ENDPOINT}"\n'
        '[workflows.photos]\n'
        'sources = [{ pattern = "~/Pictures/**/*.jpg", base = "~/Pictures" }]\n'
        'to = "store"\ntemplate = "v1/{rel_path}"\nworkers = 2\n')
    user.env.update(BUCKET=s3_bucket, ENDPOINT=moto_endpoint)
    first = user("run", "photos")
    assert first.returncode == 0, first.stderr
    assert "uploaded=2" in first.stdout
    shown = json.loads(user("show", "1", "--json").stdout)
    settings = shown["settings"]
    assert (shown["command"], shown["workflow"], shown["outcome"]) == ("push", "photos", "ok")
    assert settings["remote"] == f"s3://{s3_bucket}/backup"
    assert settings["remote_options"] == {"name": "store", "endpoint_url": moto_endpoint,
                                          "profile": None, "region": None, "path_style": False,
                                          "account_url": None, "replace_archived": False}
    assert settings["sources"] == [{"pattern": f"{user.home}/Pictures/**/*.jpg",
                                    "base": f"{user.home}/Pictures"}]
    assert (settings["template"], settings["workers"], settings["trigger"]) == (
        "v1/{rel_path}", 2, "manual")
    assert settings["config"] == str(config)
    assert sorted(t["key"] for t in shown["transfers"]) == ["backup/v1/2025/a.jpg",
                                                      "backup/v1/2025/b.jpg"]

    # the file changes; the job does not: --job 1 runs v1 with the endpoint job 1 used, even
    # with the variables gone from the environment
    config.write_text(config.read_text().replace("v1/", "v2/"))
    del user.env["BUCKET"], user.env["ENDPOINT"]
    rerun = user("run", "--job", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert "uploaded=0 skipped=2" in rerun.stdout
    second = json.loads(user("show", "2", "--json").stdout)["settings"]
    assert second == {**settings, "trigger": "rerun of job 1"}
    broken = user("run", "photos")
    assert broken.returncode == 2
    assert f"{config}:2: remotes.store.url: the environment variable BUCKET" in broken.stderr

    user.env.update(BUCKET=s3_bucket, ENDPOINT=moto_endpoint)
    assert "uploaded=2" in user("run", "photos").stdout
    keys = [o["Key"] for o in s3_client.list_objects_v2(  # type: ignore[attr-defined]
        Bucket=s3_bucket)["Contents"]]
    assert keys == ["backup/v1/2025/a.jpg", "backup/v1/2025/b.jpg", "backup/v2/2025/a.jpg",
                    "backup/v2/2025/b.jpg"]
    table = user("jobs").stdout
    assert "push (photos)" in table


def test_run_needs_a_workflow_or_a_workflow_job(user: User) -> None:
    src = make_tree(user.work / "src", {"a.txt": "a"})
    (user.work / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{src}"]\nto = "{user.work}/out"\n')
    assert user("push", str(src), "--to", str(user.work / "pushed")).returncode == 0
    cases = [
        ([], "name a workflow (hoard run NAME) or a past job (hoard run --job N)"),
        (["w", "--job", "1"], "name a workflow (hoard run NAME) or a past job"),
        (["nope"], "no workflow named 'nope' (defined: w)"),
        (["--job", "1"], "job 1 was not a workflow run (it was a `hoard push`/`sync` from the "
                         "command line"),
        (["--job", "9"], "no job 9 in the catalog"),
    ]
    for args, message in cases:
        r = user("run", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)


def test_a_failed_run_is_the_last_outcome_with_its_error(user: User) -> None:
    (user.work / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{user.work}/unmounted"]\nto = "{user.work}/out"\n'
        'schedule = "0 2 * * *"\n')
    r = user("run", "w")
    assert r.returncode == 2 and "unmounted does not exist" in r.stderr
    listed = json.loads(user("workflows", "--json").stdout)
    assert listed[0]["name"] == "w" and listed[0]["next_ns"] > time.time_ns()
    last = listed[0]["last_job"]
    assert (last["id"], last["outcome"]) == (1, "failed")
    assert last["error"].endswith("unmounted does not exist")
    assert "job 1 failed" in user("workflows").stdout


def test_statuses_say_when_a_run_was_missed(tmp_path: Path) -> None:
    (tmp_path / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{tmp_path}"]\nto = "{tmp_path}/out"\n'
        'schedule = "0 2 * * *"\ntimezone = "UTC"\n'
        f'[workflows.manual]\nsources = ["{tmp_path}"]\nto = "{tmp_path}/out"\n')
    config = load_config(str(tmp_path / "hoard.toml"), {})
    from datetime import UTC

    catalog = Catalog(str(tmp_path / "c.sqlite"))
    try:
        catalog.start_job("push", {}, to_ns(datetime(2026, 5, 1, 2, 0, 3, tzinfo=UTC)),
                          workflow="w")
        on_time = statuses(config, catalog, to_ns(datetime(2026, 5, 1, 9, 0, tzinfo=UTC)))
        late = statuses(config, catalog, to_ns(datetime(2026, 5, 4, 9, 0, tzinfo=UTC)))
    finally:
        catalog.close()
    assert [(s.name, s.overdue, s.next_ns) for s in on_time] == [
        ("manual", False, None), ("w", False, to_ns(datetime(2026, 5, 2, 2, 0, tzinfo=UTC)))]
    assert [(s.name, s.overdue, s.next_ns) for s in late][1] == (
        "w", True, to_ns(datetime(2026, 5, 4, 9, 0, tzinfo=UTC)))


def test_sigterm_stops_a_run_between_files_and_the_rerun_continues(
        user: User, moto_endpoint: str, s3_bucket: str) -> None:
    make_tree(user.work / "src", {f"f{i:04d}.bin": os.urandom(64) for i in range(400)})
    (user.work / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{user.work}/src"]\nto = "s3://{s3_bucket}/x"\nworkers = 1\n')
    user.env["AWS_ENDPOINT_URL"] = moto_endpoint
    proc = user.popen("run", "w")
    try:
        deadline = time.monotonic() + 60
        while not (user.log.exists() and user.log.read_text().count("uploaded ") >= 3):
            assert time.monotonic() < deadline and proc.poll() is None, "never got going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "SIGTERM: stopping after the files in flight" in err
    assert "files were not attempted, and the files planning had not reached yet were not " \
           "counted; run `hoard run w` again to continue" in err
    job = user.jobs()[0]
    assert job["outcome"] == "interrupted"
    done = int(job["uploaded"])  # type: ignore[call-overload]
    assert 3 <= done < 400
    rerun = user("run", "w")
    assert rerun.returncode == 0, rerun.stderr
    assert f"uploaded={400 - done} skipped={done} failed=0" in rerun.stdout


def test_daemon_install_for_each_platform(user: User, tmp_path: Path) -> None:
    (user.work / "hoard.toml").write_text(
        f'[workflows.w]\nsources = ["{user.work}"]\nto = "{user.home}/out"\n'
        'schedule = "0 2 * * *"\n')
    config = str(user.work / "hoard.toml")
    unit = user("daemon", "--install", "--platform", "systemd")
    assert unit.returncode == 0, unit.stderr
    assert (f"ExecStart={sys.executable} -m hoard daemon --config {config} --catalog "
            f"{user.catalog}") in unit.stdout
    assert "KillSignal=SIGTERM" in unit.stdout and "WantedBy=default.target" in unit.stdout
    assert "systemctl --user enable --now hoard.service" in unit.stderr
    written = user("daemon", "--install", "--platform", "systemd", "--write")
    assert written.returncode == 0, written.stderr
    path = user.xdg / "systemd" / "user" / "hoard.service"
    assert path.read_text() == unit.stdout

    agent = user("daemon", "--install", "--platform", "launchd")
    plist = plistlib.loads(agent.stdout.encode())
    assert plist["ProgramArguments"] == [sys.executable, "-m", "hoard", "daemon", "--config",
                                         config, "--catalog", user.catalog]
    assert plist["RunAtLoad"] is True and plist["Label"] == "org.hoard.daemon"
    assert str(user.home / "Library/LaunchAgents/org.hoard.daemon.plist") in agent.stderr

    cron = user("daemon", "--install", "--platform", "cron")
    assert cron.stdout.startswith(f"@reboot HOARD_LOG_FILE={user.log} {sys.executable} -m hoard "
                                  f"daemon --config {config}")
    refused = user("daemon", "--install", "--platform", "cron", "--write")
    assert refused.returncode == 2 and "run without --write" in refused.stderr


def test_a_sync_workflow_mirrors_with_its_delete_guards(user: User) -> None:
    src = make_tree(user.work / "src", {"a.txt": "a", "b.txt": "b", "c.txt": "c"})
    (user.work / "hoard.toml").write_text(
        '[workflows.mirror]\nsources = ["src"]\nto = "./out"\nmode = "sync"\ndelete = true\n'
        'max_delete = "50%"\n')
    first = user("run", "mirror")
    assert first.returncode == 0, first.stderr
    assert "uploaded=3" in first.stdout and "deleted=0" in first.stdout
    (src / "b.txt").unlink()
    dry = user("run", "mirror", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "delete" in dry.stdout and "b.txt" in dry.stdout
    assert (user.work / "out" / "b.txt").exists()
    real = user("run", "mirror")
    assert real.returncode == 0, real.stderr
    assert "deleted=1 delete_withheld=0" in real.stdout
    assert sorted(p.name for p in (user.work / "out").glob("*.txt")) == ["a.txt", "c.txt"]
    for name in ("a.txt", "c.txt"):
        (src / name).unlink()
    (src / "d.txt").write_text("d")  # 2 of 2 objects would go: more than 50%
    guarded = user("run", "mirror")
    assert guarded.returncode == 6, guarded.stderr
    assert "deletes withheld:" in guarded.stderr
    assert sorted(p.name for p in (user.work / "out").glob("*.txt")) == ["a.txt", "c.txt",
                                                                         "d.txt"]
    assert json.loads(user("show", "3", "--json").stdout)["settings"]["sync"]["max_delete"] == "50%"
