"""ListObjectsV2 through the CRT data path: the query and the parsing of its XML answer.

A restore of many small objects otherwise makes a botocore client only to list (~150 ms of
CPU for the service model and endpoint rules) and has botocore parse every page (~65 µs per
object); here a page costs one CRT request and one pass of the C XML parser. Keys are asked
for URL-encoded (``encoding-type=url``, as botocore asks) so that any key survives the XML,
and decoded as botocore decodes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import datetime
from urllib.parse import quote, unquote_plus

from hoard.errors import BackendError
from hoard.model import RemoteObject

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def query(prefix: str, token: str | None, max_keys: int) -> str:
    """The query string of one ListObjectsV2 page, names in sorted order (as signed)."""
    q = []
    if token:
        q.append(f"continuation-token={quote(token, safe='')}")
    q += ["encoding-type=url", "list-type=2", f"max-keys={max_keys}"]
    q.append(f"prefix={quote(prefix, safe='')}")
    return "&".join(q)


def parse(
    body: bytes, tier_of: Callable[[str], str], cold: tuple[str, ...], what: str
) -> tuple[list[RemoteObject], str | None]:
    """The objects of one page and the token for the next page (None: this was the last)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BackendError(f"{what}: the store's listing is not XML ({exc})") from None
    ns = _NS if root.tag.startswith(_NS) else ""
    encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
    found = []
    for item in root.iter(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key") or ""
        tier = tier_of(item.findtext(f"{ns}StorageClass") or "STANDARD")
        found.append(
            RemoteObject(
                key=unquote_plus(key) if encoded else key,
                size=int(item.findtext(f"{ns}Size") or 0),
                etag=(item.findtext(f"{ns}ETag") or "").strip('"'),
                tier=tier,
                modified_ns=_ns_of(item.findtext(f"{ns}LastModified") or ""),
                warm=tier not in cold,
            )
        )
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise BackendError(f"{what}: the store's listing is truncated but gives no next token")
    return found, token


def pages(
    fetch: Callable[[str], bytes],
    prefix: str,
    max_keys: int,
    tier_of: Callable[[str], str],
    cold: tuple[str, ...],
    what: str,
) -> Iterator[RemoteObject]:
    """Every object under ``prefix``, page by page; ``fetch(query)`` answers one page."""
    token: str | None = None
    while True:
        found, token = parse(fetch(query(prefix, token, max_keys)), tier_of, cold, what)
        yield from found
        if token is None:
            return


def _ns_of(stamp: str) -> int:
    """An S3 timestamp (ISO 8601, UTC) in ns since the epoch, rounded as botocore's path."""
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0
