"""The restore side of the command line: `restore`, `catalog rebuild`, `manifest export` and
`cleanup`. Thin: parse, call the core, render."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import replace

import click

from hoard import console_restore
from hoard.backends.base import Backend
from hoard.backends.registry import RemoteOptions, open_backend, parse_remote, remote_of_store
from hoard.catalog import Catalog
from hoard.cli_common import common, remote_options, wait_lock_option, writer_lock
from hoard.errors import UsageError
from hoard.report import NullReporter
from hoard.restore import OVERWRITE, THAW_SPEEDS
from hoard.units import format_duration, parse_duration

RESTORE_HELP = """Bring archived files back: into their original tree under a new root (--to), or
where they came from (--in-place).

\b
  hoard restore s3://bucket/backup --to ~/restored          # everything under a prefix
  hoard restore --path ~/Pictures/2025 --in-place            # by original path (catalog)
  hoard restore --job 42 --to /mnt/restore --dry-run         # what a past job archived
  hoard restore s3://bucket/guids --manifest map.json --to ~/r
  hoard restore s3://bucket/backup --to ~/r --thaw bulk --days 7 [--wait]
  hoard restore --status                                     # pending, ready, expired thaws

Each file is downloaded to a temporary name beside its target, verified against the hash
recorded when it was archived, given its original mtime, flushed to disk and renamed into
place; a rerun skips what was already restored and verified. Keys or recorded paths that
would escape the target, and symlinks in the target tree, are refused. Exit status: 0 when
everything selected is in place, 1 when something failed, 7 when objects are still frozen
(thawing, or needing --thaw).
"""


@click.command(help=RESTORE_HELP)
@click.argument("url", required=False)
@click.option("--to", "to", metavar="DIR", help="Restore under this folder.")
@click.option("--in-place", is_flag=True, help="Restore to the original paths (catalog).")
@click.option("--path", "path", metavar="PATH", help="Select by original file or folder.")
@click.option("--job", "job", type=int, help="Select what a past job uploaded.")
@click.option("--manifest", metavar="FILE", help="Select by a {id: original path} JSON map.")
@click.option(
    "--overwrite",
    type=click.Choice(OVERWRITE),
    default="never",
    show_default=True,
    help="What to do with files already at the target.",
)
@click.option(
    "--thaw",
    type=click.Choice(THAW_SPEEDS),
    help="Request thaws of archive-tier objects at this speed.",
)
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 365),
    help="How long thawed copies stay readable.",
)
@click.option("--wait", is_flag=True, help="Poll until thawed objects are ready, then download.")
@click.option(
    "--poll-interval",
    default="60s",
    show_default=True,
    metavar="AGE",
    help="First wait between polls with --wait (doubles up to 30m).",
)
@click.option("--status", is_flag=True, help="Show pending, ready and expired thaws.")
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Files fetched at a time; a large file's ranges come at most min(4, N) at a time.",
)
@click.option("--dry-run", is_flag=True, help="Print every step with its reason; do nothing.")
@click.option(
    "--metrics",
    metavar="FILE",
    help="Sample CPU, memory and disk I/O once a second into FILE (JSON lines).",
)
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@wait_lock_option
@remote_options
@common
def restore(
    catalog: Catalog,
    s3: RemoteOptions,
    url: str | None,
    to: str | None,
    in_place: bool,
    path: str | None,
    job: int | None,
    manifest: str | None,
    overwrite: str,
    thaw: str | None,
    days: int,
    wait: bool,
    poll_interval: str,
    status: bool,
    workers: int,
    dry_run: bool,
    metrics: str | None,
    as_json: bool,
    quiet: bool,
    wait_lock: float,
) -> None:
    from hoard import restore as r

    backends = _backend_cache(s3)
    held = contextlib.ExitStack()
    try:
        held.enter_context(writer_lock(catalog, "hoard restore", wait_lock, dry_run or status))
        if status:
            rows = r.thaw_status(catalog, backends, time.time_ns())
            click.echo(json.dumps(rows, indent=2) if as_json else console_restore.thaw_table(rows))
            return
        chosen = [
            name
            for name, v in (
                ("URL", url and not manifest),
                ("--path", path),
                ("--job", job is not None),
                ("--manifest", manifest),
            )
            if v
        ]
        if len(chosen) != 1:
            raise UsageError(
                "choose what to restore: a remote URL, --path, --job, or --manifest with a URL"
            )
        if manifest and not url:
            raise UsageError("--manifest needs the remote URL the ids live under")
        if bool(to) == in_place:
            raise UsageError("say where to: --to DIR, or --in-place")
        settings = r.RestoreSettings(
            url=url,
            to=to,
            in_place=in_place,
            path=path,
            job=job,
            manifest=manifest,
            overwrite=overwrite,
            thaw=thaw,
            days=days,
            wait=wait,
            poll_s=parse_duration(poll_interval),
            workers=workers,
            dry_run=dry_run,
        )
        folders: list[str] = []
        if url:
            remote = parse_remote(url)
            backend = backends(open_backend(remote, s3).url)
            prefix = remote.prefix + "/" if remote.prefix else ""
            if manifest:
                items, folders = r.select_manifest(backend, prefix, r.read_manifest(manifest))
            else:
                items = r.select_prefix(backend, prefix, catalog)
        elif path:
            items = r.select_catalog(
                catalog.objects_for_path(os.path.abspath(os.path.expanduser(path)))
            )
        else:
            assert job is not None
            items = r.select_catalog(catalog.objects_of_job(job))
        steps = r.plan_restore(items, folders, settings, catalog, backends, time.time_ns())
        if not quiet and not as_json:
            console_restore.print_restore_plan(
                sys.stdout if dry_run else sys.stderr, steps, thaw, dry_run
            )
        from hoard.metrics import Sampler

        with Sampler(metrics) if metrics else contextlib.nullcontext():
            result = r.run_restore(steps, settings, catalog, backends, NullReporter(), time.time_ns)
    finally:
        held.close()
        for b in backends.opened.values():
            b.close()
    if as_json:
        click.echo(console_restore.restore_json(result))
    else:
        for error in result.errors:
            click.echo(f"error: {error}", err=True)
        if result.stopped_by:
            click.echo(
                f"error: stopped early: {result.stopped_by}; {result.not_attempted} files were "
                "not attempted. Everything restored before is in place and recorded; run the "
                "same command again to continue.",
                err=True,
            )
        click.echo(console_restore.restore_summary(result, thaw))
    frozen = result.pending or result.count("needs-thaw")
    sys.exit(1 if result.failed else 7 if frozen and not dry_run else 0)


class _Backends:
    """Backends by the store URL the catalog records, opened once each."""

    def __init__(self, s3: RemoteOptions) -> None:
        self.s3 = s3
        self.opened: dict[str, Backend] = {}

    def __call__(self, store: str) -> Backend:
        if store not in self.opened:
            remote, endpoint = remote_of_store(store)
            opts = replace(self.s3, endpoint_url=endpoint) if endpoint else self.s3
            backend = open_backend(remote, opts)
            self.opened[backend.url] = backend
            self.opened.setdefault(store, backend)
        return self.opened[store]


def _backend_cache(s3: RemoteOptions) -> _Backends:
    return _Backends(s3)


@click.group("catalog")
def catalog_group() -> None:
    """Maintain the local catalog."""


@catalog_group.command("rebuild")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@common
def catalog_rebuild(catalog: Catalog, s3: RemoteOptions, url: str, as_json: bool) -> None:
    """Rebuild catalog entries for every object under URL from the metadata hoard wrote on
    it (a new machine, a lost catalog). Run before `hoard restore --in-place`."""
    from hoard.rebuild import rebuild_catalog

    remote = parse_remote(url)
    backend = open_backend(remote, s3)
    try:
        result = rebuild_catalog(
            backend, remote.prefix + "/" if remote.prefix else "", catalog, time.time_ns
        )
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps(result.__dict__))
    else:
        click.echo(
            f"objects={result.objects} imported={result.imported} "
            f"without_hoard_metadata={result.foreign}"
        )


@click.group("manifest")
def manifest_group() -> None:
    """GUID archives: the mapping from object ids back to original paths."""


@manifest_group.command("export")
@click.argument("url")
@click.option("--out", "out", metavar="FILE", help="Write here instead of standard output.")
@remote_options
@common
def manifest_export(catalog: Catalog, s3: RemoteOptions, url: str, out: str | None) -> None:
    """Write {id: original path} for every object the catalog knows under URL, as JSON (the
    index a `push --template '{guid}'` archive needs to be restored with --manifest)."""
    from hoard.rebuild import export_manifest

    remote = parse_remote(url)
    backend = open_backend(remote, s3)
    backend.close()
    doc = json.dumps(
        export_manifest(catalog, backend.url, remote.prefix + "/" if remote.prefix else ""),
        indent=2,
        sort_keys=True,
    )
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(doc + "\n")
    else:
        click.echo(doc)


@click.command()
@click.argument("url")
@click.option(
    "--older-than",
    default="24h",
    show_default=True,
    metavar="AGE",
    help="Only uploads started at least this long ago (30m, 24h, 7d).",
)
@click.option(
    "--include-tracked", is_flag=True, help="Also abort uploads the catalog could still resume."
)
@click.option("--dry-run", is_flag=True, help="List what would be aborted; abort nothing.")
@click.option("--json", "as_json", is_flag=True)
@remote_options
@common
def cleanup(
    catalog: Catalog,
    s3: RemoteOptions,
    url: str,
    older_than: str,
    include_tracked: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Abort unfinished multipart uploads under URL that hoard no longer tracks, so they stop
    accruing storage charges. Uploads a later push can still resume are kept."""
    from hoard.cleanup import plan_cleanup, run_cleanup

    try:
        age_ns = int(parse_duration(older_than) * 1e9)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    remote = parse_remote(url)
    backend = open_backend(remote, s3)
    try:
        prefix = remote.prefix + "/" if remote.prefix else ""
        found = plan_cleanup(backend, catalog, prefix, age_ns, time.time_ns(), include_tracked)
        if not found.supported:
            click.echo(f"{remote.scheme} remotes keep no unfinished uploads; nothing to do")
            return
        aborted = 0 if dry_run else run_cleanup(backend, catalog, found)
    finally:
        backend.close()
    verb = "would abort" if dry_run else "aborted"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dry_run": dry_run,
                    "aborted": aborted,
                    "abort": [u.__dict__ for u in found.abort],
                    "kept_tracked": [u.__dict__ for u in found.tracked],
                    "kept_recent": [u.__dict__ for u in found.recent],
                },
                indent=2,
            )
        )
        return
    now = time.time_ns()
    for u in found.abort:
        age = format_duration((now - u.initiated_ns) / 1e9)
        click.echo(f"{verb:<12} {u.key}  (upload {u.upload_id[:16]}…, started {age} ago)")
    click.echo(
        f"{verb.replace(' ', '_')}={len(found.abort)} kept_tracked={len(found.tracked)} "
        f"kept_recent={len(found.recent)}"
    )
