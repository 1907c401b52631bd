"""The two-way merge behind `sync`: walk a sorted source listing and a sorted remote listing
in step (rclone's "march"), so neither side has to be held as a dict."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from hoard.model import RemoteObject

T = TypeVar("T")


class ListingFailed:
    """Set by ``march`` when the remote listing broke off; the merge then treats the rest of
    the remote as unknown (no extras reported past that point)."""

    def __init__(self) -> None:
        self.error: Exception | None = None


def march(
    local: Iterable[tuple[str, T]],
    remote: Iterable[RemoteObject],
    failed: ListingFailed | None = None,
) -> Iterator[tuple[str, T | None, RemoteObject | None]]:
    """Yield (key, local item or None, remote object or None) in key order.

    Both inputs must be sorted by key in UTF-8 byte order (which is code-point order, so
    plain string comparison agrees). Keys present on one side only come with None for the
    other. If iterating ``remote`` raises and ``failed`` is given, the error is stored there
    and the remaining local items are yielded as local-only.
    """
    rit = iter(remote)

    def next_remote() -> RemoteObject | None:
        try:
            return next(rit)
        except StopIteration:
            return None
        except Exception as exc:
            if failed is None:
                raise
            failed.error = exc
            return None

    r = next_remote()
    last = ""
    for key, item in local:
        if key < last:
            raise ValueError(f"source keys out of order: {key!r} after {last!r}")
        last = key
        while r is not None and r.key < key:
            yield r.key, None, r
            r = next_remote()
        if r is not None and r.key == key:
            yield key, item, r
            r = next_remote()
        else:
            yield key, item, None
    while r is not None:
        yield r.key, None, r
        r = next_remote()
