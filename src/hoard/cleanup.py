"""Finding and aborting unfinished multipart uploads that nobody will resume.

An upload the catalog still tracks is kept: the next push of that file resumes it. Everything
else under the prefix that is older than the cut-off is aborted, so it stops accruing charges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hoard.backends.base import Backend, IncompleteUpload, UploadCleanup
from hoard.catalog import Catalog


@dataclass
class CleanupResult:
    abort: list[IncompleteUpload] = field(default_factory=list)
    tracked: list[IncompleteUpload] = field(default_factory=list)
    recent: list[IncompleteUpload] = field(default_factory=list)
    supported: bool = True


def plan_cleanup(
    backend: Backend,
    catalog: Catalog,
    prefix: str,
    older_than_ns: int,
    now_ns: int,
    include_tracked: bool = False,
) -> CleanupResult:
    result = CleanupResult()
    if not isinstance(backend, UploadCleanup):
        result.supported = False
        return result
    tracked = catalog.tracked_uploads(backend.url)
    for upload in backend.incomplete_uploads(prefix):
        if upload.upload_id in tracked and not include_tracked:
            result.tracked.append(upload)
        elif now_ns - upload.initiated_ns < older_than_ns:
            result.recent.append(upload)
        else:
            result.abort.append(upload)
    return result


def run_cleanup(backend: Backend, catalog: Catalog, result: CleanupResult) -> int:
    """Abort what ``plan_cleanup`` chose; returns how many were aborted."""
    assert isinstance(backend, UploadCleanup)
    tracked = catalog.tracked_uploads(backend.url)
    for upload in result.abort:
        backend.abort_upload(upload.key, upload.upload_id)
        if tracked.get(upload.upload_id) == upload.key:
            catalog.forget_upload(backend.url, upload.key)
    return len(result.abort)
