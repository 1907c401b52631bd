"""Rendering for the terminal: progress, plans, summaries and catalog tables."""

from __future__ import annotations

import json
import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from hoard.model import Action, Delete, Problem
from hoard.plan import Plan
from hoard.push import PushResult
from hoard.units import format_duration, format_size, format_time

if TYPE_CHECKING:  # rich loads only when something is drawn: a quiet run never pays for it
    from rich.console import Console
    from rich.progress import Progress

    from hoard.sync import SyncResult

log = logging.getLogger("hoard")


class ConsoleReporter:
    """Warnings to stderr; a progress display on a terminal, nothing otherwise."""

    def __init__(self, err: TextIO, quiet: bool = False, progress: bool | None = None) -> None:
        self.err = err
        self.quiet = quiet
        self._console: Console | None = None
        show = progress if progress is not None else (err.isatty() and not quiet)
        self.progress_bar: Progress | None = None
        if show:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress_bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
        self._task: Any = None
        self._files_total = 0
        self._files_done = 0
        self._planned = False
        self._examined = 0
        self._sent: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.err, highlight=False)
        return self._console

    def __enter__(self) -> ConsoleReporter:
        if self.progress_bar is not None:
            self.progress_bar.start()
            self._task = self.progress_bar.add_task("planning: 0 files examined", total=None)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress_bar is not None:
            self.progress_bar.stop()

    def problem(self, problem: Problem) -> None:
        level = logging.ERROR if problem.fails else logging.WARNING
        log.log(level, "%s: %s", problem.path, problem.message)
        if not self.quiet:
            word = "error" if problem.fails else "warning"
            self.console.print(
                f"{word}: {problem.path}: {problem.message}", markup=False, soft_wrap=True
            )

    def examined(self, files: int) -> None:
        before = self._examined
        self._examined += files
        if self.progress_bar is not None and self._examined // 64 != before // 64:
            self.progress_bar.update(self._task, description=self._files_label())

    def planned(self, upload_files: int, upload_bytes: int) -> None:
        """The totals, once planning is done: uploads may have started already (they keep
        their progress)."""
        self._files_total, self._planned = upload_files, True
        if self.progress_bar is not None:
            self.progress_bar.update(
                self._task, total=upload_bytes, description=self._files_label()
            )

    def _files_label(self) -> str:
        if self._planned:
            return f"uploading {self._files_done}/{self._files_total} files"
        if self._files_done:  # uploads started while planning goes on
            return f"uploading {self._files_done} files, planning: {self._examined} examined"
        return f"planning: {self._examined} files examined"

    def progress(self, action: Action, sent_bytes: int) -> None:
        with self._lock:
            self._sent[action.key] = self._sent.get(action.key, 0) + sent_bytes
        if self.progress_bar is not None:
            self.progress_bar.update(self._task, advance=sent_bytes)

    def resumed(self, action: Action, resumed_bytes: int) -> None:
        message = (
            f"resuming {action.file.path}: resumed {format_size(resumed_bytes)} of "
            f"{format_size(action.file.size)} already on the store"
        )
        log.info("%s", message)
        if not self.quiet:
            self.console.print(message, markup=False, soft_wrap=True)
        self.progress(action, resumed_bytes)

    def transferred(self, action: Action, ok: bool, bytes_sent: int, error: str) -> None:
        if ok:
            log.info("uploaded %s -> %s (%s)", action.file.path, action.key, action.reason)
        else:
            log.error("failed %s -> %s: %s", action.file.path, action.key, error)
            if not self.quiet:
                self.console.print(
                    f"error: {action.file.path}: {error}", markup=False, soft_wrap=True
                )
        self._files_done += 1
        if self.progress_bar is not None:
            self.progress_bar.update(
                self._task, advance=action.file.size, description=self._files_label()
            )


def summary_line(r: PushResult, elapsed_s: float) -> str:
    c = r.counts()
    resumed = f" resumed={c['resumed']}" if c["resumed"] else ""
    line = (
        f"scanned={c['scanned']} uploaded={c['uploaded']}{resumed} skipped={c['skipped']} "
        f"failed={c['failed']}"
    )
    line += r.summary_extra()
    line += f" bytes={format_size(c['bytes'])} elapsed={format_duration(elapsed_s)}"
    if r.warnings:
        line += f" warnings={r.warnings}"
    if r.job_id is not None:
        line += f" job={r.job_id}"
    return line


def _json_doc(r: PushResult, elapsed_s: float, with_actions: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **r.counts(),
        "warnings": r.warnings,
        "elapsed_s": round(elapsed_s, 3),
        "job": r.job_id,
        "outcome": r.outcome,
        "problems": [
            {"path": p.path, "message": p.message, "fails": p.fails} for p in r.plan.problems
        ],
        "errors": r.transfer.errors,
    }
    if r.transfer.stopped_by:
        doc["not_attempted"] = r.transfer.not_attempted
        doc["stopped_by"] = r.transfer.stopped_by
        doc["unexamined"] = r.transfer.unexamined
    if with_actions:
        doc["plan"] = [
            {
                "action": a.kind.value,
                "path": a.file.path,
                "key": a.key,
                "reason": a.reason,
                "size": a.file.size,
            }
            for a in r.plan.actions
        ]
        doc["totals"] = r.plan.totals()
    return doc


def push_json(r: PushResult, elapsed_s: float, with_actions: bool) -> str:
    return json.dumps(_json_doc(r, elapsed_s, with_actions), indent=2)


def sync_json(r: SyncResult, elapsed_s: float, with_actions: bool) -> str:
    doc = _json_doc(r, elapsed_s, with_actions)
    doc.update(
        extras=r.extras,
        delete_changed=r.delete_changed,
        refusals=r.refusals,
        early_deletion=r.early_deletion,
        listing_error=r.listing_error or None,
    )
    if with_actions:
        doc["plan"] += [
            {
                "action": "delete" if r.delete_requested else "extra",
                "path": d.path,
                "key": d.key,
                "reason": d.reason,
                "size": d.remote.size,
            }
            for d in r.plan.deletes
        ]
    return json.dumps(doc, indent=2)


def print_plan(out: TextIO, plan: Plan, deleting: bool = False) -> None:
    for a in plan.kept():
        out.write(f"{a.kind.value:<8} {a.key or '-'}  <- {a.file.path}  ({a.reason})\n")
    word = "delete" if deleting else "extra"
    for d in plan.deletes:
        why = d.reason if deleting else f"{d.reason}; kept: --delete not given"
        out.write(f"{word:<8} {d.key}  ({why})\n")
    t = plan.totals()
    deletes = ""
    if plan.deletes:
        verb = "to delete" if deleting else "extras kept"
        deletes = f", {t['delete']} {verb} ({format_size(t['delete_bytes'])})"
    out.write(
        f"plan: {t['upload']} to upload ({format_size(t['upload_bytes'])}), "
        f"{t['skip']} unchanged{deletes}, {t['conflict']} conflicts, {t['fail']} failed; "
        "nothing was moved (dry run)\n"
    )


def print_extras(out: TextIO, deletes: list[Delete], limit: int = 20) -> None:
    for d in deletes[:limit]:
        out.write(f"extra: {d.key} is not in the source (kept: --delete not given)\n")
    if len(deletes) > limit:
        out.write(f"extra: … and {len(deletes) - limit} more\n")


def print_table(out: TextIO, title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(file=out, highlight=False, width=160 if not out.isatty() else None).print(table)


def print_jobs(out: TextIO, jobs: list[dict[str, Any]]) -> None:
    rows = [
        [
            str(j["id"]),
            j["command"] + (f" ({j['workflow']})" if j.get("workflow") else ""),
            format_time(j["started_ns"]),
            j["outcome"],
            str(j["scanned"]),
            str(j["uploaded"]),
            str(j["skipped"]),
            str(j["failed"]),
            format_size(j["bytes"]),
            j["settings"].get("remote", ""),
        ]
        for j in jobs
    ]
    print_table(
        out,
        "jobs",
        [
            "job",
            "command",
            "started",
            "outcome",
            "scanned",
            "uploaded",
            "skipped",
            "failed",
            "bytes",
            "remote",
        ],
        rows,
    )


def print_transfers(out: TextIO, title: str, transfers: list[dict[str, Any]]) -> None:
    rows = [
        [
            str(t["job_id"]),
            format_time(t["started_ns"]),
            t["outcome"],
            t["remote"],
            t["key"],
            (t["hash"] or "-")[:23],
            format_size(t["bytes"]),
            t["error"] or t["reason"],
        ]
        for t in transfers
    ]
    print_table(
        out,
        title,
        ["job", "time", "outcome", "remote", "key", "hash", "bytes", "reason / error"],
        rows,
    )


def print_job(out: TextIO, job: dict[str, Any]) -> None:
    out.write(
        f"job {job['id']}: {job['command']} ({job['outcome']}), hoard {job['hoard_version']}\n"
    )
    out.write(f"started {format_time(job['started_ns'])}, ended {format_time(job['ended_ns'])}\n")
    out.write(
        f"scanned={job['scanned']} uploaded={job['uploaded']} skipped={job['skipped']} "
        f"failed={job['failed']} bytes={format_size(job['bytes'])}\n"
    )
    out.write("settings: " + json.dumps(job["settings"], sort_keys=True) + "\n")
    print_transfers(out, f"transfers of job {job['id']}", job["transfers"])
