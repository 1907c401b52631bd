"""The `hoard` command end to end, as a user runs it: real processes, real files, the real S3
server on 127.0.0.1, and every bad input giving a clear error that loses nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, make_tree

SUMMARY = re.compile(r"^scanned=\d+ uploaded=\d+ skipped=\d+ failed=\d+ bytes=\S+ elapsed=\S+")


def hoard(*args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [*(prefix or []), sys.executable, "-m", "hoard", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def cat(tmp_path: Path) -> list[str]:
    return ["--catalog", str(tmp_path / "catalog.sqlite")]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "Pictures", {"2025/DSC08007.jpg": b"\xff\xd8jpeg" * 50,
                                             "2025/DSC08008.jpg": b"\xff\xd8other" * 40,
                                             "notes.txt": "hello"})


def test_push_then_jobs_history_and_show(photos: Path, tmp_path: Path, cat: list[str]) -> None:
    remote = tmp_path / "nas" / "archive"
    remote.parent.mkdir()
    r = hoard("push", str(photos), "--to", f"file://{remote}", "--template",
              "photos/{file_modified:%Y}/{base_dir_underscore}/{filename}", *cat)
    assert r.returncode == 0, r.stderr
    assert SUMMARY.match(r.stdout.strip().splitlines()[-1])
    assert "uploaded=3 skipped=0 failed=0" in r.stdout
    year = time.strftime("%Y", time.localtime(os.stat(photos / "notes.txt").st_mtime))
    assert (remote / "photos" / year / "2025" / "DSC08007.jpg").read_bytes() == \
        (photos / "2025/DSC08007.jpg").read_bytes()
    again = hoard("push", str(photos), "--to", f"file://{remote}", "--template",
                  "photos/{file_modified:%Y}/{base_dir_underscore}/{filename}", *cat)
    assert "uploaded=0 skipped=3 failed=0" in again.stdout

    jobs = json.loads(hoard("jobs", "--json", *cat).stdout)
    assert [(j["id"], j["outcome"], j["uploaded"], j["skipped"]) for j in jobs] == [
        (2, "ok", 0, 3), (1, "ok", 3, 0)]
    history = json.loads(hoard("history", str(photos / "2025/DSC08007.jpg"), "--json",
                               *cat).stdout)
    assert len(history) == 1
    assert history[0]["job_id"] == 1 and history[0]["outcome"] == "ok"
    assert history[0]["key"] == f"photos/{year}/2025/DSC08007.jpg"
    assert history[0]["hash"].startswith("blake3:")
    shown = json.loads(hoard("show", "1", "--json", *cat).stdout)
    assert shown["settings"]["template"].startswith("photos/")
    assert len(shown["transfers"]) == 3
    table = hoard("jobs", *cat).stdout
    assert "push" in table and "ok" in table


def test_pattern_source_with_base_on_s3_dry_run_then_real(tmp_path: Path, moto_endpoint: str,
                                                          s3_bucket: str, s3_client: object,
                                                          cat: list[str]) -> None:
    home = tmp_path / "home"
    make_tree(home / "Videos", {"2025/trip.mp4": b"m" * 1000, "2025/trip.MOV": "x",
                                "2025/clip.mov": b"q" * 10, "readme.txt": "no"})
    env = {"HOME": str(home), "AWS_ENDPOINT_URL": moto_endpoint}
    args = ["push", "~/Videos/**/*.{mp4,mov}", "--base", "~/Videos", "--to",
            f"s3://{s3_bucket}/videos", "--tier", "deep_archive", *cat]
    dry = hoard(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = [ln for ln in dry.stdout.splitlines() if ln.startswith("upload")]
    assert len(lines) == 2
    assert "videos/2025/clip.mov" in dry.stdout and "videos/2025/trip.mp4" in dry.stdout
    assert "(new)" in lines[0]
    assert "2 to upload" in dry.stdout
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)  # type: ignore[attr-defined]
    assert listed.get("KeyCount", 0) == 0
    real = hoard(*args, env=env)
    assert real.returncode == 0, real.stderr
    objects = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]  # type: ignore[attr-defined]
    assert [(o["Key"], o["StorageClass"]) for o in objects] == [
        ("videos/2025/clip.mov", "DEEP_ARCHIVE"), ("videos/2025/trip.mp4", "DEEP_ARCHIVE")]
    history = json.loads(hoard("history", str(home / "Videos/2025/trip.mp4"), "--json", *cat,
                               env=env).stdout)
    assert history[0]["tier"] == "deep_archive"


def test_json_output(photos: Path, tmp_path: Path, cat: list[str]) -> None:
    r = hoard("push", str(photos), "--to", str(tmp_path / "out"), "--json", *cat)
    doc = json.loads(r.stdout)
    assert (doc["scanned"], doc["uploaded"], doc["failed"], doc["outcome"]) == (3, 3, 0, "ok")
    dry = json.loads(hoard("push", str(photos), "--to", str(tmp_path / "out"), "--json",
                           "--dry-run", *cat).stdout)
    assert {a["action"] for a in dry["plan"]} == {"skip"}
    assert dry["totals"]["skip"] == 3


def test_missing_source_is_a_clear_error_and_writes_nothing(tmp_path: Path,
                                                            cat: list[str]) -> None:
    r = hoard("push", str(tmp_path / "not-mounted"), "--to", str(tmp_path / "out"), *cat)
    assert r.returncode == 2
    assert "not-mounted does not exist" in r.stderr
    assert "Nothing was uploaded" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--template", "{nope}/{filename}"], "unknown variable {nope}"),
    (["--template", "{filename"], "malformed"),
    (["--tier", "glacier"], "file offers standard"),
    (["--workers", "0"], "Invalid value for '--workers'"),
    (["--multipart-threshold", "lots"], "is not a size"),
])
def test_bad_options_fail_before_anything_moves(photos: Path, tmp_path: Path, cat: list[str],
                                                args: list[str], message: str) -> None:
    r = hoard("push", str(photos), "--to", str(tmp_path / "out"), *args, *cat)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_scheme(photos: Path, cat: list[str]) -> None:
    r = hoard("push", str(photos), "--to", "ftp://host/x", *cat)
    assert r.returncode == 2 and "unknown scheme 'ftp'" in r.stderr


def test_conflicting_template_names_both_files(tmp_path: Path, cat: list[str]) -> None:
    src = make_tree(tmp_path / "src", {"a/IMG_1.jpg": "1", "b/IMG_1.jpg": "2"})
    r = hoard("push", str(src), "--to", str(tmp_path / "out"), "--template", "{filename}", *cat)
    assert r.returncode == 4
    assert str(src / "a/IMG_1.jpg") in r.stderr and str(src / "b/IMG_1.jpg") in r.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_endpoint_fails_fast_not_hangs(photos: Path, cat: list[str]) -> None:
    started = time.monotonic()
    r = hoard("push", str(photos), "--to", "s3://bucket/x", "--endpoint-url",
              f"http://127.0.0.1:{free_port()}", *cat, timeout=90)
    assert r.returncode == 3
    assert "cannot be reached" in r.stderr
    assert time.monotonic() - started < 60


def test_missing_bucket(photos: Path, moto_endpoint: str, cat: list[str]) -> None:
    r = hoard("push", str(photos), "--to", "s3://hoard-missing-bucket/x", "--endpoint-url",
              moto_endpoint, *cat)
    assert r.returncode == 3 and "NoSuchBucket" in r.stderr


def test_unreadable_file_is_a_warning_and_the_run_goes_on(tmp_path: Path,
                                                          cat: list[str]) -> None:
    src = make_tree(tmp_path / "src", {"ok1.txt": "one", "locked.txt": "secret", "ok2.txt": "two"})
    (src / "locked.txt").chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    r = hoard("push", str(src), "--to", str(tmp_path / "out"), *cat, prefix=prefix)
    assert r.returncode == 1
    assert f"{src / 'locked.txt'}: cannot read: Permission denied" in r.stderr
    assert "uploaded=2 skipped=0 failed=1" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == [
        "ok1.txt", "ok2.txt"]


def test_fifo_and_socket_are_skipped_with_a_warning(tmp_path: Path, cat: list[str]) -> None:
    src = make_tree(tmp_path / "src", {"real.txt": "data"})
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        r = hoard("push", str(src), "--to", str(tmp_path / "out"), *cat, timeout=60)
    finally:
        sock.close()
    assert r.returncode == 0, r.stderr
    assert "skipped: a FIFO" in r.stderr and "skipped: a socket" in r.stderr
    assert "uploaded=1" in r.stdout and "warnings=2" in r.stdout


def test_full_disk_says_what_was_kept_and_how_to_go_on(tmp_path: Path, cat: list[str]) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=200k tmpfs {mnt} 2>/dev/null"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        src = make_tree(tmp_path / "src", {"a_small": os.urandom(50_000),
                                           "b_big": os.urandom(400_000),
                                           "c_small": os.urandom(10_000)})
        r = hoard("push", str(src), "--to", str(mnt / "remote"), "--workers", "1", *cat)
        assert r.returncode == 1
        assert "No space left on device" in r.stderr
        assert "run the same command again to continue" in r.stderr
        assert (mnt / "remote" / "a_small").read_bytes() == (src / "a_small").read_bytes()
        assert not (mnt / "remote" / "b_big").exists()
        assert not [p for p in (mnt / "remote").rglob(".hoard-tmp-*")]
    finally:
        os.system(f"umount {mnt}")


def test_tiers(tmp_path: Path) -> None:
    s3 = hoard("tiers", "s3://my-bucket")
    names = [ln.split()[0] for ln in s3.stdout.splitlines()]
    assert names == ["standard", "standard_ia", "onezone_ia", "intelligent_tiering", "glacier_ir",
                     "glacier", "deep_archive"]
    assert "thaw" in s3.stdout
    local = json.loads(hoard("tiers", str(tmp_path), "--json").stdout)
    assert [t["name"] for t in local["tiers"]] == ["standard"]
    assert hoard("tiers", "gs://c").returncode == 2


def test_no_secret_reaches_output_or_log(photos: Path, tmp_path: Path, moto_endpoint: str,
                                         s3_bucket: str, cat: list[str]) -> None:
    sentinel = "SENTINELsecretVALUE1234567890abcdefghijkl"
    log = tmp_path / "debug.log"
    r = hoard("push", str(photos), "--to", f"s3://{s3_bucket}/p", "--endpoint-url", moto_endpoint,
              "--log-level", "debug", "--log-file", str(log), *cat,
              env={"AWS_SECRET_ACCESS_KEY": sentinel})
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr + log.read_text()
    assert sentinel not in text
    assert "INFO hoard" in log.read_text()


def test_demo_runs_the_main_job_on_the_embedded_default(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "hoard", "demo", "--dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "uploaded=6 skipped=0 failed=0" in r.stdout
    assert "uploaded=0 skipped=6 failed=0" in r.stdout
    assert (tmp_path / "d/remote/backup/2025-12-24/photos/2025/2025-12-24_08-24-02:DSC08007.jpg"
            ).is_file()
