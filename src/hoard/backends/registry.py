"""Remote URLs → backends. The only place that knows which schemes exist."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hoard.backends.base import Backend, Capabilities
from hoard.backends.wrappers import Retrying, RetryPolicy
from hoard.errors import RemoteUrlError
from hoard.keys import validate_key

SCHEMES = ("file", "s3", "az")


@dataclass(frozen=True)
class Remote:
    """A parsed remote URL: the store (``scheme`` + ``store``) and a key ``prefix`` in it."""

    scheme: str
    store: str
    prefix: str

    @property
    def display(self) -> str:
        if self.scheme == "file":
            return self.store
        return f"{self.scheme}://{self.store}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class RemoteOptions:
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    path_style: bool = False
    multipart_threshold_bytes: int = 64 << 20
    part_bytes: int = 16 << 20
    workers: int = 8
    account_url: str | None = None
    replace_archived: bool = False


def parse_remote(url: str) -> Remote:
    """`file:///path`, a plain path, or `s3://bucket/prefix`; raise RemoteUrlError."""
    if "://" not in url:
        if not url:
            raise RemoteUrlError("the remote is empty")
        return Remote("file", os.path.abspath(os.path.expanduser(url)), "")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise RemoteUrlError(f"{url}: file URLs name a local path, like file:///mnt/archive")
        return Remote("file", os.path.abspath(unquote(parts.path) or "/"), "")
    if scheme in ("s3", "az", "memory"):
        if not parts.netloc:
            raise RemoteUrlError(f"{url}: the bucket name is missing (s3://BUCKET/prefix)")
        if parts.query or parts.fragment:
            raise RemoteUrlError(f"{url}: '?' and '#' are not part of a remote URL")
        prefix = unquote(parts.path).strip("/")
        if prefix:
            validate_key(prefix)
        return Remote(scheme, parts.netloc, prefix)
    if scheme in ("azure", "gs", "glacier"):
        raise RemoteUrlError(
            f"{url}: the {scheme}:// backend is not available yet; supported: {', '.join(SCHEMES)}"
        )
    raise RemoteUrlError(f"{url}: unknown scheme {scheme!r}; supported: {', '.join(SCHEMES)}")


def remote_of_store(store_url: str) -> tuple[Remote, str | None]:
    """The Remote for a store as the catalog names it (``Backend.url``), and its endpoint."""
    parts = urlsplit(store_url)
    endpoint = None
    if parts.scheme == "az":
        return parse_remote(store_url.split("?", 1)[0]), None
    if parts.query.startswith("endpoint="):
        endpoint = parts.query.removeprefix("endpoint=")
        store_url = store_url.split("?", 1)[0]
    return parse_remote(store_url), endpoint


def capabilities_of(remote: Remote) -> Capabilities:
    """What a backend offers, known without contacting it."""
    if remote.scheme == "s3":
        from hoard.backends import s3

        return s3.CAPABILITIES
    if remote.scheme == "memory":
        from hoard.backends import memory

        return memory.CAPABILITIES
    if remote.scheme == "az":
        from hoard.backends import azure

        return azure.CAPABILITIES
    from hoard.backends import localfs

    return localfs.CAPABILITIES


def s3_store_url(bucket: str, endpoint_url: str | None) -> str:
    """How the catalog names an S3 store: the bucket, and the endpoint unless it is AWS's."""
    return f"s3://{bucket}" + (f"?endpoint={endpoint_url}" if endpoint_url else "")


def open_lazily(
    remote: Remote, remote_options: RemoteOptions | None = None, policy: RetryPolicy | None = None
) -> Backend:
    """``open_backend`` for a run that may make no request at all (a no-change rerun): an S3
    store is opened, and its module imported, on first use."""
    if remote.scheme != "s3":
        return open_backend(remote, remote_options, policy)
    from hoard.backends.deferred import Deferred

    endpoint_url = (remote_options or RemoteOptions()).endpoint_url
    return Deferred(
        s3_store_url(remote.store, endpoint_url),
        lambda: open_backend(remote, remote_options, policy),
    )


_MEMORY_STORES: dict[str, Backend] = {}


def open_backend(
    remote: Remote, remote_options: RemoteOptions | None = None, policy: RetryPolicy | None = None
) -> Backend:
    """A ready backend for ``remote`` whose requests are retried under ``policy``.

    S3 applies the policy to each request itself (so a failed part is retried alone); the
    others are wrapped in ``Retrying``.
    """
    if remote.scheme == "s3":
        from hoard.backends.s3 import S3Backend

        o = remote_options or RemoteOptions()
        return S3Backend(
            remote.store,
            endpoint_url=o.endpoint_url,
            profile=o.profile,
            region=o.region,
            path_style=o.path_style,
            multipart_threshold_bytes=o.multipart_threshold_bytes,
            part_bytes=o.part_bytes,
            workers=o.workers,
            policy=policy,
        )
    if remote.scheme == "az":
        from hoard.backends.azure import AzureBackend

        o = remote_options or RemoteOptions()
        return AzureBackend(
            remote.store,
            account_url=o.account_url,
            multipart_threshold_bytes=o.multipart_threshold_bytes,
            part_bytes=o.part_bytes,
            workers=o.workers,
            policy=policy,
            replace_archived=o.replace_archived,
        )
    inner: Backend
    if remote.scheme == "memory":
        from hoard.backends.memory import MemoryBackend

        inner = _MEMORY_STORES.setdefault(remote.store, MemoryBackend(remote.store))
    else:
        from hoard.backends.localfs import LocalBackend

        inner = LocalBackend(remote.store)
    return Retrying(inner, policy)
