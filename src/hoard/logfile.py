"""The log file, written through a buffer: a big run logs a line per file, and a write (a system
call that also gives up the GIL to the upload threads) per line was a fifth of the coordinating
thread's time. A line reaches the file within ``delay_s`` (a warning or an error at once), and
every line is written when the process exits normally; a killed process may lose the last
second of lines, never a catalog record (the catalog, not the log, is what hoard trusts)."""

from __future__ import annotations

import logging
import threading


class BufferedFileHandler(logging.FileHandler):
    def __init__(self, path: str, delay_s: float = 1.0) -> None:
        super().__init__(path, encoding="utf-8")
        self.delay_s = delay_s
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            stream = self.stream or self._open()
            stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                stream.flush()
            elif self._timer is None:
                self._timer = threading.Timer(self.delay_s, self._flush_later)
                self._timer.daemon = True
                self._timer.start()
        except Exception:
            self.handleError(record)

    def _flush_later(self) -> None:
        with self._held():
            self._timer = None
            if self.stream is not None and not self.stream.closed:
                self.stream.flush()

    def _held(self) -> threading.RLock:
        assert self.lock is not None  # made by Handler.__init__
        return self.lock

    def close(self) -> None:
        with self._held():
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        super().close()
