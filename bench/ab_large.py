#!/usr/bin/env python3
"""A/B/s5cmd, interleaved: first upload of the large set into a fresh bucket, on its own
SeaweedFS (bench/run.py's settings: 8 workers, 16 MiB parts from 64 MiB up).

    python3 bench/ab_large.py --a /work/main --b . [--rounds 5] [--tools A,B,S,R] [--data DIR]

A and B: hoard from each checkout's own .venv; S: s5cmd; R: rclone (bench/run.py's commands).
The order rotates every round; prints each run (wall s, CPU s, peak RSS) and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run import CREDENTIALS, drop_bucket, listing, new_bucket, s3_client, seaweedfs  # noqa: E402


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{argv} failed")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--data", default=str(BENCH / ".work" / "data" / "large"))
    p.add_argument("--peers", default=str(BENCH / ".work" / "peers-venv" / "bin"))
    p.add_argument("--tools", default="A,B,S")
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HOARD_", "RCLONE_"))}
    env.update(CREDENTIALS)
    expected = {f.name: f.stat().st_size for f in Path(args.data).iterdir()}
    tools = args.tools.split(",")
    results: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
    with (
        tempfile.TemporaryDirectory(prefix="ab-large-") as tmp,
        seaweedfs(Path(tmp) / "seaweed", f"{args.peers}/weed") as url,
    ):
        client = s3_client(url)
        Path(tmp, "rclone.conf").touch()
        env.update(RCLONE_CONFIG=f"{tmp}/rclone.conf", RCLONE_CONFIG_BENCH_TYPE="s3",
                   RCLONE_CONFIG_BENCH_PROVIDER="Other", RCLONE_CONFIG_BENCH_ENDPOINT=url,
                   RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="testing",
                   RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="testing",
                   RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")  # fmt: skip
        for r in range(args.rounds):
            for t in tools[r % len(tools) :] + tools[: r % len(tools)]:
                bucket = f"ab-{t.lower()}-{uuid.uuid4().hex[:8]}"
                new_bucket(client, bucket)
                if t == "S":
                    argv = [f"{args.peers}/s5cmd", "--endpoint-url", url, "--log", "error",
                            "--numworkers", "8", "cp", "--concurrency", "8", "--part-size",
                            "16", f"{args.data}/*", f"s3://{bucket}/data/"]  # fmt: skip
                    cwd = tmp
                elif t == "R":
                    argv = ["rclone", "copy", args.data, f"bench:{bucket}/data",
                            "--transfers", "8", "--checkers", "8",
                            "--s3-upload-concurrency", "8", "--s3-chunk-size", "16Mi",
                            "--s3-upload-cutoff", "64Mi"]  # fmt: skip
                    cwd = tmp
                else:
                    cwd = args.a if t == "A" else args.b
                    argv = [f"{cwd}/.venv/bin/python", "-m", "hoard", "push", args.data,
                            "--to", f"s3://{bucket}/data", "--endpoint-url", url,
                            "--path-style", "--catalog", f"{tmp}/{bucket}.sqlite", "-q",
                            "--workers", "8", "--log-file", f"{tmp}/hoard.log"]  # fmt: skip
                wall, cpu, rss = timed(argv, env, cwd)
                got = listing(client, bucket, "data")
                assert got == expected, (t, got)
                drop_bucket(client, bucket)
                results[t].append((wall, cpu, rss))
                print(f"round {r + 1} {t}: {wall:.2f} s {cpu:.2f} s CPU {rss:.0f} MB", flush=True)
    mb = sum(expected.values()) / 1e6
    for t, rs in results.items():
        w = statistics.median(x[0] for x in rs)
        c = statistics.median(x[1] for x in rs)
        m = statistics.median(x[2] for x in rs)
        print(f"{t}: median {w:.2f} s wall ({mb / w:.0f} MB/s), {c:.2f} s CPU, {m:.0f} MB RSS")


if __name__ == "__main__":
    main()
