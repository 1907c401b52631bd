"""How the core tells the outside what is happening. The core never prints; front-ends
(the CLI, later the web UI) implement ``Reporter``."""

from __future__ import annotations

from typing import Protocol

from hoard.model import Action, Problem


class Reporter(Protocol):
    def problem(self, problem: Problem) -> None: ...
    def examined(self, files: int) -> None:
        """``files`` more files were decided (the plan keeps only those it acts on)."""

    def planned(self, upload_files: int, upload_bytes: int) -> None: ...
    def progress(self, action: Action, sent_bytes: int) -> None:
        """Part of a file was stored (called from worker threads)."""

    def resumed(self, action: Action, resumed_bytes: int) -> None:
        """An interrupted upload continues; ``resumed_bytes`` were already stored."""

    def transferred(self, action: Action, ok: bool, bytes_sent: int, error: str) -> None: ...


class NullReporter:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def examined(self, files: int) -> None:
        pass

    def planned(self, upload_files: int, upload_bytes: int) -> None:
        pass

    def progress(self, action: Action, sent_bytes: int) -> None:
        pass

    def resumed(self, action: Action, resumed_bytes: int) -> None:
        pass

    def transferred(self, action: Action, ok: bool, bytes_sent: int, error: str) -> None:
        pass
