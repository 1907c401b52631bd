"""`hoard demo`: the main job on the embedded default, end to end, with nothing to configure.

Creates a small tree of sample files, pushes it to a local folder used as the remote (with a
template), pushes again to show that unchanged files cost only a stat, then shows what the
catalog recorded. Everything lives under one folder, including its own catalog.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime
from typing import TextIO

SAMPLES = {  # relative path: (size, modification time)
    "photos/2025/DSC08007.jpg": (48_000, "2025-12-24 08:24:02"),
    "photos/2025/DSC08008.jpg": (52_000, "2025-12-24 08:25:40"),
    "photos/2026/trip/IMG_0001.heic": (70_000, "2026-07-14 17:02:11"),
    "documents/taxes-2025.pdf": (20_000, "2026-03-30 21:10:00"),
    "documents/notes.txt": (1_200, "2026-11-01 09:00:00"),
    "videos/clip.mp4": (300_000, "2026-08-02 12:30:45"),
}


def make_samples(root: str) -> None:
    for rel, (size, when) in SAMPLES.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            with open(path, "wb") as fh:
                fh.write(os.urandom(size))
            stamp = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").timestamp()
            os.utime(path, (stamp, stamp))


def run_demo(workdir: str, out: TextIO) -> int:
    from hoard.cli import main

    samples = os.path.join(workdir, "samples")
    remote = os.path.join(workdir, "remote")
    make_samples(samples)
    common = [
        "--catalog",
        os.path.join(workdir, "catalog.sqlite"),
        "--log-file",
        os.path.join(workdir, "hoard.log"),
    ]
    template = "backup/{file_modified:%Y-%m-%d}/{base_dir}/{file_modified_datetime}:{filename}"
    steps = [
        ["push", samples, "--to", "file://" + remote, "--template", template, "--dry-run"],
        ["push", samples, "--to", "file://" + remote, "--template", template],
        ["push", samples, "--to", "file://" + remote, "--template", template],
        ["jobs"],
        ["history", os.path.join(samples, "photos")],
    ]
    out.write(f"hoard demo in {workdir}: sample files in samples/, the remote in remote/\n")
    status = 0
    for args in steps:
        out.write(f"\n$ hoard {shlex.join(args)}\n")
        out.flush()
        try:
            main.main(args=[*args, *common], prog_name="hoard", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if code:
                out.write(f"(exit status {code})\n")
                status = code
    out.write(f"\nThe objects are under {remote}; the catalog is {workdir}/catalog.sqlite.\n")
    return status
