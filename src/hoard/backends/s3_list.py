"""ListObjectsV2 over plain HTTP, for the CRT path: the query of one page, and its XML answer
read the way botocore reads it.

Keys are asked for URL-encoded (``encoding-type=url``, as botocore does), so a key holding a
byte XML 1.0 cannot carry still lists; they are decoded only when the answer says it encoded
them. Timestamps become nanoseconds by the same arithmetic as the botocore path, so both paths
give the same ``modified_ns``.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote, unquote_plus
from xml.etree import ElementTree


class Listed(NamedTuple):
    key: str
    size: int
    etag: str  # without quotes
    storage_class: str
    modified_ns: int


def page_query(prefix: str, max_keys: int, token: str | None) -> str:
    """The query string of one ListObjectsV2 page, each value encoded as SigV4 expects."""
    params = [("encoding-type", "url"), ("list-type", "2"), ("max-keys", str(max_keys))]
    if prefix:
        params.append(("prefix", prefix))
    if token:
        params.append(("continuation-token", token))
    return "&".join(f"{name}={quote(value, safe='-_.~')}" for name, value in sorted(params))


def _tag(element: ElementTree.Element) -> str:
    return element.tag.rpartition("}")[2]  # with or without the S3 namespace


def parse_page(body: bytes) -> tuple[list[Listed], str | None]:
    """The objects of one page, and the token of the next page (None on the last)."""
    root = ElementTree.fromstring(body)
    fields = {_tag(e): e for e in root}
    encoded = (fields["EncodingType"].text or "") == "url" if "EncodingType" in fields else False
    objects = []
    for item in root:
        if _tag(item) != "Contents":
            continue
        got = {_tag(e): e.text or "" for e in item}
        key = unquote_plus(got["Key"]) if encoded else got["Key"]
        modified = datetime.fromisoformat(got["LastModified"].replace("Z", "+00:00"))
        objects.append(
            Listed(
                key,
                int(got["Size"]),
                got.get("ETag", "").strip('"'),
                got.get("StorageClass") or "STANDARD",
                int(modified.timestamp() * 1e9),
            )
        )
    truncated = "IsTruncated" in fields and (fields["IsTruncated"].text or "") == "true"
    token = fields["NextContinuationToken"].text if "NextContinuationToken" in fields else None
    if truncated and not token:
        raise ValueError("the listing is truncated but gives no continuation token")
    return objects, token if truncated else None
