"""The log file is buffered, yet every line arrives: within the delay while idle (a daemon
waiting for its next run), at once for warnings, and all of it at a normal exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

from hoard.logfile import BufferedFileHandler


def logger_to(path: Path, delay_s: float) -> tuple[logging.Logger, BufferedFileHandler]:
    handler = BufferedFileHandler(str(path), delay_s=delay_s)
    log = logging.getLogger(f"test-logfile-{path.name}")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.propagate = False
    return log, handler


def test_an_info_line_arrives_within_the_delay_even_when_nothing_follows(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    log, handler = logger_to(path, delay_s=0.3)
    try:
        log.info("uploaded one")
        assert "uploaded one" not in path.read_text()  # buffered: no write per line
        deadline = time.monotonic() + 10
        while "uploaded one" not in path.read_text():
            assert time.monotonic() < deadline, "the line never reached the file"
            time.sleep(0.05)
    finally:
        handler.close()


def test_a_warning_is_written_at_once_with_the_lines_before_it(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    log, handler = logger_to(path, delay_s=60)
    try:
        log.info("first")
        log.warning("store is throttling")
        text = path.read_text()
        assert text.index("first") < text.index("store is throttling")
    finally:
        handler.close()


def test_every_line_is_in_the_file_after_a_normal_exit(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    code = (
        "import logging; from hoard.logfile import BufferedFileHandler\n"
        f"h = BufferedFileHandler({str(path)!r}, delay_s=60)\n"
        "log = logging.getLogger('x'); log.setLevel(logging.INFO); log.addHandler(h)\n"
        "for i in range(5000): log.info('uploaded %d', i)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    lines = path.read_text().splitlines()
    assert len(lines) == 5000 and lines[-1].endswith("uploaded 4999")
