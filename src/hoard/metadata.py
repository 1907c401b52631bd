"""The user metadata hoard writes on every object, and reading it back.

Names are lower-case ASCII with hyphens; values are ASCII (paths percent-encoded), because S3
sends metadata as HTTP headers. This is the only way back to the original tree when the catalog
is lost, so it is versioned (`hoard-format`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from hoard import FORMAT_VERSION
from hoard.model import LocalFile

HASH = "hoard-hash"
PATH = "hoard-path"
SOURCE = "hoard-source"
SIZE = "hoard-size"
MTIME_NS = "hoard-mtime-ns"
FORMAT = "hoard-format"


def for_file(f: LocalFile, content_hash: str) -> dict[str, str]:
    return {
        HASH: content_hash,
        PATH: quote(f.rel_path, safe="/"),
        SOURCE: quote(f.root, safe="/"),
        SIZE: str(f.size),
        MTIME_NS: str(f.mtime_ns),
        FORMAT: FORMAT_VERSION,
    }


@dataclass(frozen=True)
class Recorded:
    """What an object's metadata says about the file it came from."""

    hash: str
    rel_path: str
    source: str
    size: int
    mtime_ns: int


def read(meta: Mapping[str, str]) -> Recorded | None:
    """Decode hoard's metadata; None when the object was not written by hoard."""
    m = {k.lower(): v for k, v in meta.items()}
    if HASH not in m:
        return None
    try:
        return Recorded(
            m[HASH],
            unquote(m.get(PATH, "")),
            unquote(m.get(SOURCE, "")),
            int(m.get(SIZE, "-1")),
            int(m.get(MTIME_NS, "0")),
        )
    except ValueError:
        return None
