"""Samples this process's CPU, memory and disk I/O once a second into a JSON-lines file."""

from __future__ import annotations

import json
import threading
import time
from types import TracebackType

import psutil


class Sampler:
    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hoard-metrics", daemon=True)
        self.samples = 0

    def __enter__(self) -> Sampler:
        self._out = open(self.path, "a", encoding="utf-8")
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._out.close()

    def _run(self) -> None:
        proc = psutil.Process()
        proc.cpu_percent(None)
        while True:
            io = _io(proc)
            mem = proc.memory_info()
            self._out.write(
                json.dumps(
                    {
                        "time": round(time.time(), 3),
                        "cpu_percent": proc.cpu_percent(None),
                        "rss_bytes": mem.rss,
                        "read_bytes": io[0],
                        "write_bytes": io[1],
                        "threads": proc.num_threads(),
                    }
                )
                + "\n"
            )
            self._out.flush()
            self.samples += 1
            if self._stop.wait(self.interval_s):
                return


def _io(proc: psutil.Process) -> tuple[int, int]:
    try:
        c = proc.io_counters()
        return c.read_bytes, c.write_bytes
    except (AttributeError, psutil.Error):
        return 0, 0
