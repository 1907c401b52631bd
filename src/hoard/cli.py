"""The `hoard` command line: each command parses, calls the core, renders. Nothing more."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hoard import __version__
from hoard.backends.base import Backend
from hoard.backends.registry import (
    Remote,
    RemoteOptions,
    capabilities_of,
    open_lazily,
    parse_remote,
)
from hoard.catalog import Catalog
from hoard.cli_common import common, remote_options, wait_lock_option, writer_lock
from hoard.errors import HoardError, UsageError
from hoard.hashing import ALGORITHMS
from hoard.keys import DEFAULT_TEMPLATE, VARIABLES, Template
from hoard.units import parse_size

if TYPE_CHECKING:
    from hoard.console import ConsoleReporter
    from hoard.push import PushResult, PushSettings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("hoard")


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: Commands whose modules load only when the command runs (or help lists it): a push or a
#: rerun never pays for importing restore, the workflow scheduler or the config parser. Likewise
#: push's own modules (hoard.push, hoard.console and what they import: scan, plan, transfer, …)
#: load inside the commands that use them, not for a restore or a --help.
LAZY_COMMANDS = {
    "restore": "hoard.cli_restore:restore",
    "catalog": "hoard.cli_restore:catalog_group",
    "manifest": "hoard.cli_restore:manifest_group",
    "cleanup": "hoard.cli_restore:cleanup",
    "init": "hoard.cli_workflows:init",
    "workflows": "hoard.cli_workflows:workflows",
    "run": "hoard.cli_workflows:run",
    "daemon": "hoard.cli_workflows:daemon",
}


class LazyGroup(click.Group):
    """A group whose LAZY_COMMANDS are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="hoard")
def main() -> None:
    """hoard archives local files into object storage, remembers everything it moved in a local
    catalog, and brings it back.

    Remotes: a local folder (`file:///mnt/nas/archive` or a plain path, the default that needs
    no account), S3-compatible storage (`s3://bucket/prefix`) or Azure Blob Storage
    (`az://container/prefix`).
    """


PUSH_HELP = f"""Archive SOURCES (folders, files or glob patterns) to a remote.

\b
  hoard push ~/Pictures --to file:///mnt/nas/archive \\
      --template 'photos/{{file_created:%Y/%m}}/{{filename}}'
  hoard push '~/Videos/**/*.{{mp4,mov}}' --base ~/Videos --to s3://bucket/videos \\
      --tier deep_archive --dry-run

Unchanged files (same size, mtime and inode as last time) are not read again; changed and new
files are hashed ({"/".join(ALGORITHMS)}) and uploaded. Every object carries its hash, original
path, size and mtime in its metadata.

\b
Template variables: {", ".join(VARIABLES)}.
Dates take a strftime spec: {{file_modified:%Y/%m}}. Default template: {DEFAULT_TEMPLATE}.

Exit status: 0 when nothing failed, 1 when some files failed, 2 for a usage error, 3 for a
remote that refused or could not be reached, 4 for files rendering to the same key.
"""


@dataclass(frozen=True)
class TransferOptions:
    """The options `push` and `sync` share."""

    template: str
    tier: str | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    skip_name: tuple[str, ...]
    skip_path: tuple[str, ...]
    follow_symlinks: bool
    hash_algorithm: str
    workers: int
    multipart_threshold: int | None
    part_size: int | None
    dry_run: bool
    as_json: bool
    quiet: bool


def transfer_options(fn: F) -> F:
    names = [f.name for f in fields(TransferOptions)]

    @click.option(
        "--template", default=DEFAULT_TEMPLATE, show_default=True, help="Key template (see below)."
    )
    @click.option("--tier", help="Storage tier (see `hoard tiers URL`).")
    @click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeat).")
    @click.option(
        "--exclude", multiple=True, metavar="GLOB", help="Leave out matching files/folders."
    )
    @click.option("--skip-name", multiple=True, metavar="NAME", help="Skip files/folders so named.")
    @click.option("--skip-path", multiple=True, metavar="PATH", help="Skip this file or folder.")
    @click.option("--follow-symlinks", is_flag=True, help="Follow symlinks (loops are detected).")
    @click.option(
        "--hash",
        "hash_algorithm",
        type=click.Choice(ALGORITHMS),
        default="blake3",
        show_default=True,
    )
    @click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 256))
    @click.option(
        "--multipart-threshold",
        callback=_size,
        metavar="SIZE",
        help="Upload files at least this big in parts [default: 64MiB].",
    )
    @click.option("--part-size", callback=_size, metavar="SIZE", help="Part size [default: 16MiB].")
    @click.option(
        "--dry-run", is_flag=True, help="Print every action with its reason; move nothing."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @click.option("-q", "--quiet", is_flag=True, help="Only the summary line and errors.")
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = TransferOptions(**{name: kwargs.pop(name) for name in names})
        return fn(*args, opts=opts, **kwargs)

    return wrapper  # type: ignore[return-value]


def _prepare(
    opts: TransferOptions, s3: RemoteOptions, sources: tuple[str, ...], url: str, base: str | None
) -> tuple[Remote, PushSettings, RemoteOptions]:
    remote = parse_remote(url)
    if opts.tier is not None and opts.tier not in (tiers := capabilities_of(remote).tiers):
        raise UsageError(f"--tier {opts.tier}: {remote.scheme} offers {', '.join(tiers)}")
    from hoard.push import PushSettings

    Template.compile(opts.template)
    s3 = replace(
        s3,
        workers=opts.workers,
        multipart_threshold_bytes=opts.multipart_threshold or s3.multipart_threshold_bytes,
        part_bytes=opts.part_size or s3.part_bytes,
    )
    settings = PushSettings(
        sources=sources,
        remote=url,
        prefix=remote.prefix,
        base=base,
        template=opts.template,
        tier=opts.tier,
        include=opts.include,
        exclude=opts.exclude,
        skip_names=opts.skip_name,
        skip_paths=opts.skip_path,
        follow_symlinks=opts.follow_symlinks,
        hash_algorithm=opts.hash_algorithm,
        workers=opts.workers,
        dry_run=opts.dry_run,
    )
    return remote, settings, s3


R = TypeVar("R", bound="PushResult")


def _run(
    opts: TransferOptions,
    remote: Remote,
    s3: RemoteOptions,
    job: Callable[[Backend, ConsoleReporter], R],
) -> tuple[R, float]:
    from hoard import console

    backend = open_lazily(remote, s3)
    t0 = time.monotonic()
    try:
        with console.ConsoleReporter(sys.stderr, quiet=opts.quiet or opts.as_json) as reporter:
            result = job(backend, reporter)
    finally:
        backend.close()
    return result, time.monotonic() - t0


def _report_stop(result: PushResult) -> None:
    if result.transfer.stopped_by:
        click.echo(
            f"error: stopped early: {result.transfer.stopped_by}; "
            f"{result.transfer.left_out()}. Everything "
            "uploaded before is recorded; run the same command again to continue.",
            err=True,
        )


@main.command(help=PUSH_HELP)
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--to", "to", required=True, metavar="URL", help="Remote: path, file://, s3:// or az://."
)
@click.option("--base", metavar="DIR", help="Folder that {rel_path} and {base_dir} start from.")
@transfer_options
@wait_lock_option
@remote_options
@common
def push(
    catalog: Catalog,
    s3: RemoteOptions,
    opts: TransferOptions,
    sources: tuple[str, ...],
    to: str,
    base: str | None,
    wait_lock: float,
) -> None:
    from hoard import console
    from hoard.push import run_push

    remote, settings, s3 = _prepare(opts, s3, sources, to, base)
    with writer_lock(catalog, "hoard push", wait_lock, opts.dry_run):
        result, elapsed = _run(
            opts, remote, s3, lambda b, r: run_push(settings, b, catalog, r, time.time_ns)
        )
    if opts.as_json:
        click.echo(console.push_json(result, elapsed, with_actions=opts.dry_run))
    else:
        if opts.dry_run:
            console.print_plan(sys.stdout, result.plan)
        _report_stop(result)
        click.echo(console.summary_line(result, elapsed))
    log.info("push %s: %s", result.outcome, console.summary_line(result, elapsed))
    sys.exit(1 if result.failed else 0)


SYNC_HELP = """Mirror SOURCE (a folder) to URL: upload what is new or changed, and with --delete
remove objects under the prefix that are no longer in the source.

\b
  hoard sync ~/Projects s3://bucket/projects            # extras are listed, never removed
  hoard sync ~/Projects s3://bucket/projects --delete --dry-run
  hoard sync ~/Projects s3://bucket/projects --delete --max-delete 50% --force

Deletes happen last, and only when every guard agrees: no error in the scan, the listing or
the uploads; the source is not empty, is on the same device as last time and has its
--marker; at most --max-delete of the objects go (default 20%). Otherwise they are withheld
and counted (exit status 6). A whole bucket (no prefix) must be named again with
--delete-whole-bucket. An object that changed since it was listed is left alone.

Options shared with `hoard push` work the same way; see `hoard push --help` for templates.
"""


@main.command(help=SYNC_HELP)
@click.argument("source")
@click.argument("url")
@click.option("--base", metavar="DIR", help="Folder that {rel_path} and {base_dir} start from.")
@click.option("--delete", is_flag=True, help="Delete extras (objects not in the source).")
@click.option(
    "--max-delete",
    default="20%",
    show_default=True,
    metavar="N|P%",
    help="Refuse to delete more than this share or number of the objects.",
)
@click.option("--force", is_flag=True, help="Delete even beyond --max-delete.")
@click.option(
    "--allow-empty-source",
    is_flag=True,
    help="Delete even if the source is empty, moved to another device or lacks its --marker.",
)
@click.option(
    "--marker",
    metavar="NAME",
    help="A file that must exist at the source root for deletes to happen.",
)
@click.option(
    "--backup-prefix",
    metavar="PREFIX",
    help="Move extras under PREFIX/<date>/ instead of deleting them.",
)
@click.option(
    "--delete-whole-bucket",
    metavar="BUCKET",
    help="Allow --delete on a URL with no prefix by naming its bucket again.",
)
@transfer_options
@wait_lock_option
@remote_options
@common
def sync(
    catalog: Catalog,
    s3: RemoteOptions,
    opts: TransferOptions,
    source: str,
    url: str,
    base: str | None,
    delete: bool,
    max_delete: str,
    force: bool,
    allow_empty_source: bool,
    marker: str | None,
    backup_prefix: str | None,
    delete_whole_bucket: str | None,
    wait_lock: float,
) -> None:
    from hoard import console
    from hoard.sync import SyncSettings, run_sync

    remote, push_settings, s3 = _prepare(opts, s3, (source,), url, base)
    settings = SyncSettings(
        push_settings,
        remote.store,
        delete=delete,
        max_delete=max_delete,
        force=force,
        allow_empty_source=allow_empty_source,
        marker=marker,
        backup_prefix=backup_prefix,
        delete_whole_bucket=delete_whole_bucket,
    )
    with writer_lock(catalog, "hoard sync", wait_lock, opts.dry_run):
        result, elapsed = _run(
            opts, remote, s3, lambda b, r: run_sync(settings, b, catalog, r, time.time_ns)
        )
    withheld = bool(delete and result.refusals and result.plan.deletes)
    if opts.as_json:
        click.echo(console.sync_json(result, elapsed, with_actions=opts.dry_run))
    else:
        if opts.dry_run:
            console.print_plan(sys.stdout, result.plan, deleting=delete)
        elif not delete and result.plan.deletes:
            console.print_extras(sys.stderr, result.plan.deletes)
        for why in result.refusals if withheld else []:
            click.echo(f"deletes withheld: {why}", err=True)
        _report_stop(result)
        click.echo(console.summary_line(result, elapsed))
    log.info("sync %s: %s", result.outcome, console.summary_line(result, elapsed))
    sys.exit(1 if result.failed else 6 if withheld else 0)


@main.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True)
@common
def history(catalog: Catalog, path: str, as_json: bool) -> None:
    """Every transfer of a file (or of the files under a folder): job, key, hash, time."""
    from hoard import console

    full = os.path.abspath(os.path.expanduser(path))
    rows = catalog.history(full)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no transfers recorded for {full}")
    else:
        console.print_transfers(sys.stdout, f"history of {full}", rows)


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@common
def jobs(catalog: Catalog, limit: int, as_json: bool) -> None:
    """Past runs with their outcome and counts, newest first."""
    from hoard import console

    rows = catalog.jobs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no jobs recorded yet")
    else:
        console.print_jobs(sys.stdout, rows)


@main.command()
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@common
def show(catalog: Catalog, job_id: int, as_json: bool) -> None:
    """One job: the exact settings it ran with, its counts and its transfers."""
    from hoard import console

    job = catalog.job(job_id)
    if job is None:
        raise UsageError(f"no job {job_id} in the catalog (see `hoard jobs`)")
    if as_json:
        click.echo(json.dumps(job, indent=2))
    else:
        console.print_job(sys.stdout, job)


@main.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True)
def tiers(url: str, as_json: bool) -> None:
    """The storage tiers a remote offers (known without contacting it)."""
    try:
        caps = capabilities_of(parse_remote(url))
    except HoardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    notes = caps.tier_notes or {}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "scheme": caps.scheme,
                    "default": caps.default_tier,
                    "tiers": [
                        {"name": t, "cold": t in caps.cold_tiers, "note": notes.get(t, "")}
                        for t in caps.tiers
                    ],
                },
                indent=2,
            )
        )
        return
    for t in caps.tiers:
        flags = " (default)" if t == caps.default_tier else ""
        flags += " (cold: thaw before reading)" if t in caps.cold_tiers else ""
        click.echo(f"{t:<20} {notes.get(t, '')}{flags}".rstrip())


@main.command()
@click.option(
    "--dir",
    "workdir",
    default="hoard-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the samples, remote and catalog go.",
)
def demo(workdir: str) -> None:
    """Create sample files, push them to a local-folder remote twice, show the catalog."""
    from hoard.demo import run_demo

    sys.exit(run_demo(os.path.abspath(workdir), sys.stdout))
