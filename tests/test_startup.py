"""Start-up cost: a no-change rerun loads only what it needs. A nightly rerun over unchanged
files is mostly interpreter start-up, so the modules it must not import are checked here (what
they cost is measured in bench/, not asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_tree

#: A quiet no-change push needs none of these: the progress display, restore, sync, the workflow
#: scheduler and config parser, the S3 backend or any S3 SDK (there is nothing to send), nor
#: platformdirs or socket (a few ms each, on Linux worked out without them).
NOT_NEEDED = ("rich", "hoard.restore", "hoard.cli_restore", "hoard.cli_workflows", "hoard.config",
              "hoard.sync", "hoard.backends.s3", "croniter", "boto3", "botocore", "awscrt",
              "psutil", "platformdirs", "socket")

PROBE = """
import atexit, runpy, sys
def report():
    print("MODULES " + " ".join(sorted(sys.modules)), file=sys.stderr)
atexit.register(report)
sys.argv = ["hoard", *sys.argv[1:]]
runpy.run_module("hoard", run_name="__main__")
"""


def loaded(*args: str) -> set[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def imported(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_a_quiet_rerun_to_a_folder_loads_no_display_restore_or_scheduler(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    args = ("push", str(src), "--to", str(tmp_path / "remote"), "--catalog",
            str(tmp_path / "c.sqlite"), "-q")
    first = loaded(*args)
    assert "hoard.push" in first  # the probe sees what the run loaded
    rerun = loaded(*args)
    assert [m for m in NOT_NEEDED if imported(rerun, m)] == []


def test_a_quiet_rerun_to_s3_loads_no_sdk(tmp_path: Path, moto_endpoint: str,
                                          s3_bucket: str) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    args = ("push", str(src), "--to", f"s3://{s3_bucket}/p", "--endpoint-url", moto_endpoint,
            "--path-style", "--catalog", str(tmp_path / "c.sqlite"), "-q")
    first = loaded(*args)
    assert imported(first, "awscrt.s3")  # the first run sent the files
    rerun = loaded(*args)
    assert [m for m in NOT_NEEDED if imported(rerun, m)] == []


def test_every_lazy_command_loads() -> None:
    import click

    from hoard.cli import LAZY_COMMANDS, main

    ctx = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name


@pytest.mark.parametrize("xdg", [None, "", "  ", "/srv/xdg data"])
def test_the_default_data_folder_is_platformdirs_own(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None
) -> None:
    import platformdirs

    from hoard.cli_common import data_dir

    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    assert data_dir() == platformdirs.user_data_dir("hoard", appauthor=False)


def test_a_small_push_to_s3_with_keys_in_the_environment_makes_no_botocore_session(
    tmp_path: Path, seaweed_endpoint: str, seaweed_bucket: str
) -> None:
    """The credentials and region come from the environment, where botocore's chain would find
    them first: the session (~170 ms of CPU) is not imported before the first request, nor at
    all when every request goes through the CRT."""
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    args = ("push", str(src), "--to", f"s3://{seaweed_bucket}/p", "--endpoint-url",
            seaweed_endpoint, "--path-style", "--catalog", str(tmp_path / "c.sqlite"), "-q")
    first = loaded(*args)
    assert "awscrt.s3" in first and "hoard.backends.s3_env" in first  # the files went up
    assert [m for m in ("botocore.session", "botocore.client", "boto3") if imported(first, m)] == []


#: push's own modules: the scan, the planner, the uploader and its display
PUSH_ONLY = ("hoard.push", "hoard.scan", "hoard.plan", "hoard.transfer", "hoard.console",
             "hoard.keyindex")


def test_a_restore_or_a_help_loads_none_of_push_s_modules(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    remote, cat = str(tmp_path / "remote"), str(tmp_path / "c.sqlite")
    assert "hoard.push" in loaded("push", str(src), "--to", remote, "--catalog", cat, "-q")
    restored = loaded("restore", remote, "--to", str(tmp_path / "out"), "--catalog", cat, "-q")
    assert (tmp_path / "out" / "d" / "b.txt").read_text() == "b"
    assert [m for m in PUSH_ONLY if imported(restored, m)] == []
    assert [m for m in PUSH_ONLY if imported(loaded("push", "--help"), m)] == []
