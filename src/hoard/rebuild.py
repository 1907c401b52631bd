"""Getting the map back from the remote: `hoard catalog rebuild` reads the metadata hoard wrote
on every object; `hoard manifest export` writes the {object id: original path} mapping of a
GUID archive as JSON."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from hoard import metadata as meta
from hoard.backends.base import Backend
from hoard.catalog import Catalog


@dataclass
class RebuildResult:
    objects: int = 0
    imported: int = 0
    foreign: int = 0  # objects without hoard metadata


def rebuild_catalog(
    backend: Backend, prefix: str, catalog: Catalog, clock: Callable[[], int]
) -> RebuildResult:
    result = RebuildResult()
    for obj in backend.list(prefix):
        result.objects += 1
        full = obj if backend.capabilities.listing_has_metadata else backend.stat(obj.key)
        recorded = meta.read(full.metadata)
        if recorded is None or not recorded.source:
            result.foreign += 1
            continue
        path = os.path.join(recorded.source, recorded.rel_path)
        catalog.import_object(
            backend.url,
            obj.key,
            full.size,
            recorded.hash,
            full.etag,
            full.tier,
            full.metadata,
            path,
            recorded.mtime_ns,
            clock(),
        )
        result.imported += 1
    return result


def export_manifest(catalog: Catalog, store: str, prefix: str) -> dict[str, str]:
    """{key below the prefix: original absolute path} for every object the catalog knows."""
    return {o.key[len(prefix) :]: o.path for o in catalog.objects_under(store, prefix) if o.path}
