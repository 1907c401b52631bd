"""`hoard daemon`: run every scheduled workflow at its time, one at a time.

The clock and the sleep are given (tests drive the daemon through days in milliseconds):

- at start, a workflow whose slot passed since its last run (the machine was off or asleep, or
  no daemon ran) is due at once — once, however many slots it missed;
- then each workflow is due at its next slot; due workflows run one after another, earliest
  slot first, so a workflow never overlaps itself or another; a slot that passes while the
  workflow itself is still running is skipped, one that passes while another workflow runs is
  run once, late;
- the daemon sleeps until the next slot in steps of at most ``max_sleep_s``, so a clock that
  jumps (suspend, resume, a DST change) is noticed within one step;
- ``stop`` (set by SIGTERM) ends the loop: the current run stops between files and is recorded
  as interrupted, and nothing new starts.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hoard.config import Workflow
from hoard.errors import HoardError
from hoard.lock import Sleep, hold_catalog
from hoard.model import Action, Problem
from hoard.schedule import NS, Schedule, to_datetime
from hoard.workflows import Runner, overdue, resolve, run_workflow, schedule_of

log = logging.getLogger("hoard.daemon")
Clock = Callable[[], int]
#: Runs one workflow for a trigger ("schedule", "missed run"); returns the job's outcome.
RunOne = Callable[[Workflow, str], str]


@dataclass
class Slot:
    workflow: Workflow
    schedule: Schedule
    due_ns: int
    missed: bool = False


class Daemon:
    def __init__(
        self,
        workflows: Iterable[Workflow],
        run: RunOne,
        last_started: Callable[[str], int | None],
        clock: Clock,
        sleep: Sleep,
        stop: threading.Event,
        max_sleep_s: float = 60.0,
    ) -> None:
        self.workflows = [wf for wf in workflows if wf.schedule is not None]
        self.run = run
        self.last_started = last_started
        self.clock = clock
        self.sleep = sleep
        self.stop = stop
        self.max_sleep_s = max_sleep_s
        self.slots: list[Slot] = []
        #: (workflow name, trigger, outcome) of every run, in order.
        self.history: list[tuple[str, str, str]] = []

    def start(self) -> list[Slot]:
        now = self.clock()
        self.slots = []
        for wf in self.workflows:
            sched = schedule_of(wf)
            assert sched is not None
            last = self.last_started(wf.name)
            if overdue(sched, last, now):
                assert last is not None
                missed = sched.next_after(last)
                log.info(
                    "workflow %s missed its run at %s; running it now",
                    wf.name,
                    _when(missed, sched),
                )
                self.slots.append(Slot(wf, sched, now, missed=True))
            else:
                slot = Slot(wf, sched, sched.next_after(now))
                log.info("workflow %s: next run at %s", wf.name, _when(slot.due_ns, sched))
                self.slots.append(slot)
        return self.slots

    def serve(self, until_ns: int | None = None) -> None:
        """Run due workflows until ``stop`` is set (or the clock reaches ``until_ns``)."""
        self.start()
        while not self.stop.is_set():
            now = self.clock()
            if until_ns is not None and now >= until_ns:
                return
            due = [s for s in self.slots if s.due_ns <= now]
            if due:
                self._run(min(due, key=lambda s: (s.due_ns, s.workflow.name)))
                continue
            wake = min((s.due_ns for s in self.slots), default=now + int(self.max_sleep_s * NS))
            if until_ns is not None:
                wake = min(wake, until_ns)
            if self.sleep(min((wake - now) / NS, self.max_sleep_s)):
                return

    def _run(self, slot: Slot) -> None:
        wf = slot.workflow
        trigger = "missed run" if slot.missed else "schedule"
        log.info("workflow %s: starting (%s)", wf.name, trigger)
        try:
            outcome = self.run(wf, trigger)
        except HoardError as exc:
            log.error("workflow %s failed: %s", wf.name, exc)
            outcome = "failed"
        except Exception:
            log.exception("workflow %s: internal error", wf.name)
            outcome = "failed"
        self.history.append((wf.name, trigger, outcome))
        ended = self.clock()
        slot.due_ns = slot.schedule.next_after(max(ended, slot.due_ns))
        slot.missed = False
        log.info(
            "workflow %s: %s; next run at %s", wf.name, outcome, _when(slot.due_ns, slot.schedule)
        )


def _when(ns: int, schedule: Schedule) -> str:
    return to_datetime(ns, schedule.zone).strftime("%Y-%m-%d %H:%M %Z")


def locked_runs(runner: Runner, sleep: Sleep, env: Mapping[str, str], config_path: str) -> RunOne:
    """Each run takes the catalog lock (waiting as long as another hoard holds it), resolves
    the workflow against ``env`` and runs it with ``runner``."""

    def run(wf: Workflow, trigger: str) -> str:
        lock = hold_catalog(
            runner.catalog, f"hoard daemon ({wf.name})", runner.clock, sleep, math.inf, log.info
        )
        with lock:
            done = run_workflow(resolve(wf, env), runner, trigger=trigger, config_path=config_path)
        counts = " ".join(f"{k}={v}" for k, v in done.result.counts().items())
        log.info("workflow %s: job %s %s: %s", wf.name, done.job_id, done.outcome, counts)
        return done.outcome

    return run


class LogReporter:
    """Reports a daemon's runs to the log only."""

    def problem(self, problem: Problem) -> None:
        log.log(
            logging.ERROR if problem.fails else logging.WARNING,
            "%s: %s",
            problem.path,
            problem.message,
        )

    def examined(self, files: int) -> None:
        pass

    def planned(self, upload_files: int, upload_bytes: int) -> None:
        log.info("planned: %d files to upload (%d bytes)", upload_files, upload_bytes)

    def progress(self, action: Action, sent_bytes: int) -> None:
        pass

    def resumed(self, action: Action, resumed_bytes: int) -> None:
        log.info("resuming %s: %d bytes already stored", action.file.path, resumed_bytes)

    def transferred(self, action: Action, ok: bool, bytes_sent: int, error: str) -> None:
        if ok:
            log.info("uploaded %s -> %s (%s)", action.file.path, action.key, action.reason)
        else:
            log.error("failed %s -> %s: %s", action.file.path, action.key, error)
