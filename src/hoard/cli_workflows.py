"""`hoard init`, `hoard workflows`, `hoard run` and `hoard daemon`: parse, call the core, render."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn

import click
import platformdirs

from hoard import __version__, console
from hoard.catalog import Catalog
from hoard.cli_common import F, common, data_dir, hold, wait_lock_option
from hoard.config import Config, Workflow, find_config, load_config, user_config_path
from hoard.errors import HoardError, UsageError
from hoard.keepawake import Inhibitor, WakepyInhibitor
from hoard.sync import SyncResult
from hoard.workflows import Runner, from_snapshot, resolve, run_workflow, statuses

log = logging.getLogger("hoard")


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        envvar="HOARD_CONFIG",
        metavar="FILE",
        help="The workflows file [env HOARD_CONFIG; default: ./hoard.toml, else hoard.toml "
        "in your config folder].",
    )(fn)


def _load(config_path: str | None) -> Config:
    return load_config(find_config(config_path, os.getcwd()), os.environ)


def _inhibitor(no_keep_awake: bool) -> Inhibitor | None:
    return None if no_keep_awake else WakepyInhibitor()


def _warn(message: str) -> None:
    log.warning("%s", message)
    click.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM or Ctrl-C once: stop between files (the job is recorded as interrupted).
    Twice: stop now (a multipart upload resumes from its last part on the next run)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = signal.Signals(signum).name
        log.warning("%s: stopping after the files in flight (send it again to stop now)", name)
        click.echo(f"{name}: stopping after the files in flight …", err=True)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in saved.items():
            signal.signal(s, old)


def _home_relative(path: str) -> str:
    home = os.path.expanduser("~")
    if path == home:
        return "~"
    return "~/" + os.path.relpath(path, home) if path.startswith(home + os.sep) else path


@click.command("init")
@config_option
@click.option(
    "--source",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="The folder the example workflow archives [default: your Documents folder if it "
    "exists, else the current folder].",
)
@click.option(
    "--archive",
    default="~/hoard-archive",
    show_default=True,
    metavar="DIR",
    help="The local folder it archives to.",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
def init(config_path: str | None, source: str | None, archive: str, force: bool) -> None:
    """Write a commented hoard.toml with one example workflow that runs as written: it
    archives a folder of yours to a local folder, nightly at 02:00."""
    from hoard.starter import example_config

    path = os.path.abspath(os.path.expanduser(config_path or user_config_path()))
    if os.path.exists(path) and not force:
        _fail(UsageError(f"{path} exists already; edit it, or pass --force to replace it"))
    documents = platformdirs.user_documents_dir()
    chosen = source or (documents if os.path.isdir(documents) else os.getcwd())
    text = example_config(_home_relative(os.path.abspath(chosen)), archive)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    try:
        load_config(path, os.environ)
    except HoardError as exc:  # would be a bug in the example
        _fail(exc)
    flag = (
        ""
        if path == user_config_path() or path == os.path.abspath("hoard.toml")
        else (f" --config {path}")
    )
    click.echo(f"wrote {path}: workflow `example` archives {chosen} to {archive}")
    click.echo(f"next:  hoard run example{flag} --dry-run   # see what it would do")
    click.echo(f"       hoard run example{flag}             # do it")
    click.echo(f"       hoard daemon --install{flag}        # run it every night")


def _fail(exc: HoardError) -> None:
    click.echo(f"error: {exc}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def _when(ns: int | None) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M") if ns else "-"


@click.command("workflows")
@config_option
@click.option("--json", "as_json", is_flag=True)
@common
def workflows(catalog: Catalog, config_path: str | None, as_json: bool) -> None:
    """The workflows in hoard.toml: what each archives where, when it runs next, and how its
    last run ended."""
    config = _load(config_path)
    rows = statuses(config, catalog, time.time_ns())
    if as_json:
        click.echo(json.dumps([s.as_json() for s in rows], indent=2))
        return
    if not rows:
        click.echo(f"no workflows in {config.path}")
        return
    table = []
    for s in rows:
        last = s.last
        last_text = (
            "never run"
            if last is None
            else (f"job {last['id']} {last['outcome']} {_when(last['started_ns'])}")
        )
        if last and last.get("error"):
            last_text += f": {last['error']}"
        next_text = "overdue: runs when the daemon starts" if s.overdue else _when(s.next_ns)
        table.append(
            [s.name, s.mode, s.to, s.schedule or "-", next_text if s.schedule else "-", last_text]
        )
    console.print_table(
        sys.stdout,
        f"workflows in {config.path}",
        ["workflow", "mode", "to", "schedule", "next run", "last run"],
        table,
    )


@click.command("run")
@click.argument("name", required=False)
@click.option("--job", "job_id", type=int, metavar="N", help="Run job N's exact snapshot again.")
@click.option("--dry-run", is_flag=True, help="Print every action with its reason; move nothing.")
@click.option("--no-keep-awake", is_flag=True, help="Let the machine sleep during the run.")
@wait_lock_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary line and errors.")
@common
def run(
    catalog: Catalog,
    name: str | None,
    job_id: int | None,
    dry_run: bool,
    no_keep_awake: bool,
    wait_lock: float,
    config_path: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run workflow NAME now, as its schedule would; or run a past job again, exactly as it
    ran (`hoard run --job 42`). The job records the fully resolved workflow before anything
    moves (`hoard show JOB`)."""
    if (name is None) == (job_id is None):
        raise UsageError("name a workflow (hoard run NAME) or a past job (hoard run --job N)")
    if job_id is not None:
        wf, trigger, source = _from_job(catalog, job_id)
    else:
        assert name is not None
        config = _load(config_path)
        wf, trigger, source = resolve(config.workflow(name), os.environ), "manual", config.path
    stop = threading.Event()
    writer = (
        contextlib.nullcontext() if dry_run else hold(catalog, f"hoard run {wf.name}", wait_lock)
    )
    t0 = time.monotonic()
    try:
        with (
            writer,
            _stop_on_signals(stop),
            console.ConsoleReporter(sys.stderr, quiet=quiet or as_json) as reporter,
        ):
            runner = Runner(catalog, time.time_ns, reporter, stop, _inhibitor(no_keep_awake), _warn)
            done = run_workflow(wf, runner, dry_run=dry_run, trigger=trigger, config_path=source)
    except KeyboardInterrupt:
        _stopped_at_once()
    elapsed = time.monotonic() - t0
    result = done.result
    withheld = isinstance(result, SyncResult) and bool(
        result.delete_requested and result.refusals and result.plan.deletes
    )
    if as_json:
        render = console.sync_json if isinstance(result, SyncResult) else console.push_json
        doc: dict[str, Any] = json.loads(render(result, elapsed, with_actions=dry_run))  # type: ignore[arg-type]
        doc.update(workflow=wf.name, trigger=trigger, outcome=done.outcome)
        click.echo(json.dumps(doc, indent=2))
    else:
        if dry_run:
            console.print_plan(sys.stdout, result.plan, deleting=wf.sync.delete)
        for why in result.refusals if withheld and isinstance(result, SyncResult) else []:
            click.echo(f"deletes withheld: {why}", err=True)
        if done.outcome == "interrupted":
            click.echo(
                f"stopped: {result.transfer.left_out()}; run "
                f"`hoard run {wf.name}` again to continue",
                err=True,
            )
        click.echo(console.summary_line(result, elapsed))
    log.info("workflow %s %s: %s", wf.name, done.outcome, console.summary_line(result, elapsed))
    sys.exit(130 if done.outcome == "interrupted" else 1 if result.failed else 6 if withheld else 0)


def _stopped_at_once() -> NoReturn:
    log.warning("stopped at once; the job is recorded as interrupted")
    click.echo(
        "stopped at once: the job is recorded as interrupted; the next run continues "
        "(a large upload from its last stored part)",
        err=True,
    )
    sys.exit(130)


def _from_job(catalog: Catalog, job_id: int) -> tuple[Workflow, str, str]:
    job = catalog.job(job_id)
    if job is None:
        raise UsageError(f"no job {job_id} in the catalog (see `hoard jobs`)")
    wf = from_snapshot(job_id, job["settings"])
    if job["hoard_version"] != __version__:
        _warn(f"job {job_id} ran with hoard {job['hoard_version']}; this is hoard {__version__}")
    return wf, f"rerun of job {job_id}", str(job["settings"].get("config", ""))


DAEMON_HELP = """Run every workflow that has a schedule at its time, one at a time, in the
foreground; log to the log file. A workflow whose run was missed while the machine was off or
asleep runs once when the daemon starts. SIGTERM (or Ctrl-C) stops it between files and records
the job as interrupted; a second one stops at once.

\b
  hoard daemon                      # until stopped
  hoard daemon --install            # print a systemd user unit / launchd agent / cron line
  hoard daemon --install --write    # … and put it where the platform looks for it
"""


@click.command("daemon", help=DAEMON_HELP)
@config_option
@click.option("--no-keep-awake", is_flag=True, help="Let the machine sleep during runs.")
@click.option("--install", is_flag=True, help="Print the service definition that starts it.")
@click.option("--write", is_flag=True, help="With --install: write the file, too.")
@click.option(
    "--platform",
    type=click.Choice(["systemd", "launchd", "cron"]),
    help="With --install: the service kind [default: this machine's].",
)
@common
def daemon(
    catalog: Catalog,
    config_path: str | None,
    no_keep_awake: bool,
    install: bool,
    write: bool,
    platform: str | None,
) -> None:
    config = _load(config_path)
    scheduled = [wf for wf in config.workflows.values() if wf.schedule]
    if install:
        _install(config, catalog, platform, write)
        return
    if not scheduled:
        raise UsageError(f"no workflow in {config.path} has a schedule; nothing to run")
    from hoard.daemon import Daemon, LogReporter, locked_runs
    from hoard.lock import CatalogLock, lock_path

    stop = threading.Event()

    def sleep(seconds: float) -> bool:
        return stop.wait(seconds)

    only_one = CatalogLock(
        lock_path(catalog.path).removesuffix(".lock") + ".daemon.lock",
        "hoard daemon",
        time.time_ns,
        sleep,
    )
    echo = logging.StreamHandler(sys.stderr)
    echo.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    daemon_log = logging.getLogger("hoard.daemon")
    daemon_log.addHandler(echo)
    try:
        with only_one.acquire(), _stop_on_signals(stop):
            daemon_log.info(
                "hoard daemon %s started: %d scheduled workflows from %s",
                __version__,
                len(scheduled),
                config.path,
            )
            runner = Runner(catalog, time.time_ns, LogReporter(), stop, _inhibitor(no_keep_awake))
            runs = locked_runs(runner, sleep, os.environ, config.path)
            Daemon(scheduled, runs, catalog.last_started, time.time_ns, sleep, stop).serve()
            daemon_log.info("hoard daemon stopped")
    except KeyboardInterrupt:
        _stopped_at_once()
    finally:
        daemon_log.removeHandler(echo)


def _install(config: Config, catalog: Catalog, platform: str | None, write: bool) -> None:
    from hoard.service import detect_platform, service

    log_file = os.environ.get("HOARD_LOG_FILE") or os.path.join(data_dir(), "hoard.log")
    command = [sys.executable, "-m", "hoard", "daemon", "--config", config.path]
    command += ["--catalog", os.path.abspath(catalog.path)]
    env = {"HOARD_LOG_FILE": log_file} if "HOARD_LOG_FILE" in os.environ else {}
    output = os.path.join(os.path.dirname(log_file), "hoard-daemon.out")
    svc = service(platform or detect_platform(), command, env, os.path.expanduser("~"), output)
    if not write:
        click.echo(svc.text, nl=False)
        where = f"save it as {svc.path} (or pass --write), then:" if svc.path else "then:"
        click.echo(f"\n# {svc.platform}: {where}", err=True)
    else:
        if svc.path is None:
            raise UsageError(f"{svc.platform} has no file of its own to write; run without --write")
        os.makedirs(os.path.dirname(svc.path), exist_ok=True)
        with open(svc.path, "w", encoding="utf-8") as fh:
            fh.write(svc.text)
        click.echo(f"wrote {svc.path}; now run:", err=True)
    for step in svc.next_steps:
        click.echo(f"  {step}", err=True)
