"""Named workflows: resolve one into push or sync settings, record it as an immutable job
snapshot before anything moves, run it while the machine is kept awake, and tell when each is
next due and how it last ended.

A job's settings are the fully resolved workflow (absolute paths, the remote with the endpoint,
profile and region that were in effect, every option); ``from_snapshot`` turns them back into
the same workflow, so `hoard run --job N` runs exactly what job N ran.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hoard.backends.base import Backend
from hoard.backends.registry import Remote, RemoteOptions, open_lazily, parse_remote
from hoard.catalog import Catalog
from hoard.config import Config, RemoteConfig, SourceSpec, SyncOptions, Workflow
from hoard.errors import Interrupted, UsageError
from hoard.keepawake import Inhibitor, kept_awake
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import Reporter
from hoard.schedule import Schedule, zone_named
from hoard.sync import SyncSettings, run_sync

log = logging.getLogger("hoard.workflows")
Clock = Callable[[], int]


def resolve(wf: Workflow, env: Mapping[str, str]) -> Workflow:
    """Fill in what the environment decides for the remote (an S3 endpoint, profile and
    region; an Azure account URL — as `hoard push` takes them), so the snapshot says exactly
    what ran. Credentials are never part of it."""
    r = wf.remote
    scheme = parse_remote(r.url).scheme
    if scheme == "az":
        account = r.account_url or env.get("AZURE_STORAGE_ACCOUNT_URL") or None
        return replace(wf, remote=replace(r, account_url=account))
    if scheme != "s3":
        return wf
    endpoint = r.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    return replace(
        wf,
        remote=replace(
            r,
            endpoint_url=endpoint or None,
            profile=r.profile or env.get("AWS_PROFILE") or None,
            region=r.region or env.get("AWS_REGION") or None,
        ),
    )


def snapshot(wf: Workflow, trigger: str, config_path: str) -> dict[str, Any]:
    """The job settings for a run of ``wf``: the workflow, plus how and from where it ran."""
    doc = asdict(wf)
    remote = doc.pop("remote")
    doc["remote"] = remote.pop("url")  # `hoard jobs` shows it, as for a push
    doc["remote_options"] = remote
    doc["workflow"] = doc.pop("name")
    doc["trigger"] = trigger
    doc["config"] = config_path
    return doc


def from_snapshot(job_id: int, doc: Mapping[str, Any]) -> Workflow:
    """The workflow a job ran; UsageError when the job was not a workflow run."""
    if "workflow" not in doc or "remote_options" not in doc:
        raise UsageError(
            f"job {job_id} was not a workflow run (it was a `hoard push`/`sync` from the command "
            "line, whose settings do not record the remote's options); run that command again"
        )
    d = dict(doc)
    try:
        d.pop("trigger", None)
        d.pop("config", None)
        name = d.pop("workflow")
        remote = RemoteConfig(url=d.pop("remote"), **d.pop("remote_options"))
        sources = tuple(SourceSpec(**s) for s in d.pop("sources"))
        sync = SyncOptions(**d.pop("sync"))
        rest: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return Workflow(name=name, sources=sources, remote=remote, sync=sync, **rest)
    except (KeyError, TypeError) as exc:
        raise UsageError(
            f"job {job_id}'s settings are not a workflow this hoard can run again ({exc})"
        ) from None


def push_settings(wf: Workflow, dry_run: bool) -> PushSettings:
    return PushSettings(
        sources=tuple(s.pattern for s in wf.sources),
        remote=wf.remote.url,
        prefix=parse_remote(wf.remote.url).prefix,
        template=wf.template,
        tier=wf.tier,
        include=wf.include,
        exclude=wf.exclude,
        skip_names=wf.skip_names,
        skip_paths=wf.skip_paths,
        follow_symlinks=wf.follow_symlinks,
        hash_algorithm=wf.hash_algorithm,
        workers=wf.workers,
        dry_run=dry_run,
        bases=tuple(s.base for s in wf.sources),
    )


def remote_options(wf: Workflow) -> RemoteOptions:
    r = wf.remote
    defaults = RemoteOptions()
    return RemoteOptions(
        endpoint_url=r.endpoint_url,
        profile=r.profile,
        region=r.region,
        path_style=r.path_style,
        multipart_threshold_bytes=wf.multipart_threshold or defaults.multipart_threshold_bytes,
        part_bytes=wf.part_size or defaults.part_bytes,
        workers=wf.workers,
        account_url=r.account_url,
        replace_archived=r.replace_archived,
    )


@dataclass
class Runner:
    """What running a workflow needs from outside."""

    catalog: Catalog
    clock: Clock
    reporter: Reporter
    stop: threading.Event = field(default_factory=threading.Event)
    inhibitor: Inhibitor | None = None
    warn: Callable[[str], None] = log.warning
    backend_for: Callable[[Remote, RemoteOptions], Backend] = open_lazily


@dataclass
class WorkflowRun:
    workflow: Workflow
    job_id: int | None
    outcome: str
    result: PushResult
    kept_awake: bool = False


def run_workflow(
    wf: Workflow,
    runner: Runner,
    *,
    dry_run: bool = False,
    trigger: str = "manual",
    config_path: str = "",
) -> WorkflowRun:
    """Record the job with its snapshot (unless dry-run), then plan and run it as a push or a
    sync, keeping the machine awake unless the workflow says not to. An error or interrupt
    after the job was recorded is recorded on it, then raised."""
    catalog, clock = runner.catalog, runner.clock
    settings = push_settings(wf, dry_run)
    job_id = None
    if not dry_run:
        job_id = catalog.start_job(
            wf.mode, snapshot(wf, trigger, config_path), clock(), workflow=wf.name
        )
        log.info("workflow %s: job %d started (%s)", wf.name, job_id, trigger)
    inhibitor = runner.inhibitor if wf.keep_awake and not dry_run else None
    try:
        backend = runner.backend_for(parse_remote(wf.remote.url), remote_options(wf))
        try:
            with kept_awake(inhibitor, f"hoard workflow {wf.name}", runner.warn) as awake:
                result: PushResult
                if wf.mode == "sync":
                    sync = SyncSettings(
                        settings, parse_remote(wf.remote.url).store, **asdict(wf.sync)
                    )
                    result = run_sync(
                        sync, backend, catalog, runner.reporter, clock, job_id, runner.stop
                    )
                else:
                    result = run_push(
                        settings, backend, catalog, runner.reporter, clock, job_id, runner.stop
                    )
        finally:
            backend.close()
    except BaseException as exc:
        if job_id is not None:
            stopped = isinstance(exc, Interrupted | KeyboardInterrupt)
            catalog.end_job(
                job_id,
                clock(),
                "interrupted" if stopped else "failed",
                str(exc) or type(exc).__name__,
            )
        raise
    return WorkflowRun(wf, job_id, result.outcome, result, awake)


@dataclass(frozen=True)
class Status:
    """A workflow as `hoard workflows` shows it."""

    name: str
    mode: str
    to: str
    schedule: str | None
    next_ns: int | None
    overdue: bool
    last: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "name": self.name,
            "mode": self.mode,
            "to": self.to,
            "schedule": self.schedule,
            "next_ns": self.next_ns,
            "overdue": self.overdue,
            "last_job": None
            if last is None
            else {k: last[k] for k in ("id", "outcome", "started_ns", "ended_ns", "error")},
        }


def schedule_of(wf: Workflow) -> Schedule | None:
    if wf.schedule is None:
        return None
    return Schedule.parse(wf.schedule, zone_named(wf.timezone))


def overdue(schedule: Schedule, last_started_ns: int | None, now_ns: int) -> bool:
    """A slot passed since the last run started: the run was missed (the machine was off,
    asleep, or no daemon ran). A workflow that never ran is not overdue."""
    return last_started_ns is not None and schedule.due_between(last_started_ns, now_ns)


def statuses(config: Config, catalog: Catalog, now_ns: int) -> list[Status]:
    last_jobs = catalog.last_workflow_jobs()
    out = []
    for name, wf in sorted(config.workflows.items()):
        sched = schedule_of(wf)
        last = last_jobs.get(name)
        late = sched is not None and overdue(sched, catalog.last_started(name), now_ns)
        out.append(
            Status(
                name,
                wf.mode,
                wf.remote.name or parse_remote(wf.remote.url).display,
                wf.schedule,
                now_ns if late else sched.next_after(now_ns) if sched else None,
                late,
                last,
            )
        )
    return out
