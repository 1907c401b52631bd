"""What every `hoard` command shares: the catalog and log options, error rendering, remote
connection options, and the catalog's writer lock."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from hoard.backends.registry import RemoteOptions
from hoard.catalog import Catalog
from hoard.errors import HoardError
from hoard.lock import CatalogLock, hold_catalog
from hoard.logfile import BufferedFileHandler

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("hoard")


def data_dir() -> str:
    """``platformdirs.user_data_dir("hoard")``; on Linux worked out here by its rule
    ($XDG_DATA_HOME, else ~/.local/share), because importing platformdirs costs ~9 ms of every
    start-up (tempfile, shutil, pathlib) and a nightly no-change rerun is mostly start-up."""
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_DATA_HOME", "")
        return os.path.join(base if base.strip() else os.path.expanduser("~/.local/share"), "hoard")
    import platformdirs

    return platformdirs.user_data_dir("hoard", appauthor=False)


def default_catalog() -> str:
    return os.path.join(data_dir(), "catalog.sqlite")


def setup_logging(log_file: str | None, level: str) -> None:
    path = log_file or os.path.join(data_dir(), "hoard.log")
    root = logging.getLogger("hoard")
    root.setLevel(level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handler: logging.Handler = BufferedFileHandler(path)
    except OSError as exc:
        click.echo(f"warning: cannot write the log file {path}: {exc.strerror}", err=True)
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.propagate = False


def common(fn: F) -> F:
    """--catalog, --log-file and --log-level on every command that touches the catalog."""

    @click.option(
        "--catalog",
        "catalog_path",
        envvar="HOARD_CATALOG",
        metavar="FILE",
        help="Catalog database [env HOARD_CATALOG; default: the user data folder].",
    )
    @click.option(
        "--log-file",
        envvar="HOARD_LOG_FILE",
        metavar="FILE",
        help="Log file [default: hoard.log in the user data folder].",
    )
    @click.option(
        "--log-level",
        default="info",
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
    )
    @wraps(fn)
    def wrapper(
        *args: Any, catalog_path: str | None, log_file: str | None, log_level: str, **kwargs: Any
    ) -> Any:
        setup_logging(log_file, log_level)
        try:
            with_catalog = Catalog(catalog_path or default_catalog())
            try:
                return fn(*args, catalog=with_catalog, **kwargs)
            finally:
                with_catalog.close()
        except HoardError as exc:
            log.error("%s", exc)
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def remote_options(fn: F) -> F:
    @click.option(
        "--endpoint-url",
        envvar=["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        metavar="URL",
        help="S3 endpoint (MinIO, R2, …) [env AWS_ENDPOINT_URL].",
    )
    @click.option("--profile", envvar="AWS_PROFILE", help="AWS profile for credentials.")
    @click.option("--region", envvar="AWS_REGION", help="S3 region [default: the profile's].")
    @click.option("--path-style", is_flag=True, help="Path-style bucket addressing.")
    @click.option(
        "--account-url",
        envvar="AZURE_STORAGE_ACCOUNT_URL",
        metavar="URL",
        help="Azure account URL, with AZURE_STORAGE_SAS_TOKEN or an Azure AD login "
        "[env AZURE_STORAGE_ACCOUNT_URL].",
    )
    @click.option(
        "--replace-archived",
        is_flag=True,
        help="Azure: delete an archived blob before uploading its new version.",
    )
    @wraps(fn)
    def wrapper(
        *args: Any,
        endpoint_url: str | None,
        profile: str | None,
        region: str | None,
        path_style: bool,
        account_url: str | None,
        replace_archived: bool,
        **kwargs: Any,
    ) -> Any:
        opts = RemoteOptions(
            endpoint_url=endpoint_url or None,
            profile=profile,
            region=region,
            path_style=path_style,
            account_url=account_url or None,
            replace_archived=replace_archived,
        )
        return fn(*args, s3=opts, **kwargs)

    return wrapper  # type: ignore[return-value]


def wait_lock_option(fn: F) -> F:
    return click.option(
        "--wait-lock",
        default=0.0,
        type=click.FloatRange(0),
        metavar="SECONDS",
        help="If another hoard is writing the catalog, wait this long for it [default: 0].",
    )(fn)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def hold(catalog: Catalog, command: str, wait_s: float) -> CatalogLock:
    """The catalog's writer lock for a command (see `hoard.lock`); CatalogBusy after wait_s."""
    return hold_catalog(
        catalog,
        command,
        time.time_ns,
        _sleep,
        wait_s,
        on_wait=lambda message: click.echo(message + " …", err=True),
    )


def writer_lock(
    catalog: Catalog, command: str, wait_s: float, dry_run: bool
) -> contextlib.AbstractContextManager[object]:
    """The catalog's writer lock; a dry run writes nothing and takes none."""
    return contextlib.nullcontext() if dry_run else hold(catalog, command, wait_s)
