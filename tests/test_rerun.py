"""A no-change rerun's fast path (``push._changed``: one narrow catalog row per file, no key
check) vouches for exactly the files the general path (``push._vouched``) vouches for, so a
real run uploads exactly what its dry run (which takes the general path) says it would."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from hoard import push as push_mod
from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.keys import Template
from hoard.model import ActionKind
from hoard.push import PushResult, PushSettings, run_push
from hoard.report import NullReporter
from hoard.scan import Entry, Filters, Source, walk
from tests.conftest import make_tree

NAMES = [f"d{i % 3}/f{i:02d}.txt" for i in range(12)]


def _push(src: Path, mem: MemoryBackend, catalog: Catalog, **kw: object) -> PushResult:
    settings = PushSettings(sources=(str(src),), remote=mem.url, workers=2,
                            **kw)  # type: ignore[arg-type]
    return run_push(settings, mem, catalog, NullReporter(), time.time_ns)


def _entries(src: Path) -> list[Entry]:
    return list(walk([Source.parse(str(src))], Filters.build(), lambda p: None))


def _diverge(tmp_path: Path, src: Path, mem: MemoryBackend, catalog: Catalog,
             prefix: str) -> set[str]:
    """Every way a file can stop being vouched for; the rel paths that did."""
    other = make_tree(tmp_path / "other", {NAMES[1]: "another file, same key"})
    _push(other, mem, catalog, prefix=prefix)  # f01's object: made from another path
    elsewhere = MemoryBackend("elsewhere")
    (src / NAMES[2]).write_text("changed, then pushed to another remote only")
    _push(src, elsewhere, catalog, prefix=prefix)  # f02's file row: a hash its object lacks
    st = os.stat(src / NAMES[3])
    os.utime(src / NAMES[3], ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # mtime
    (src / NAMES[4]).write_text((src / NAMES[4]).read_text() + "+")  # size
    st = os.stat(src / NAMES[5])
    shutil.copy(src / NAMES[5], src / "moved")  # a new inode, same bytes and times
    os.replace(src / "moved", src / NAMES[5])
    os.utime(src / NAMES[5], ns=(st.st_atime_ns, st.st_mtime_ns))
    (src / "d0" / "new.txt").write_text("new")  # no object
    return {NAMES[1], NAMES[2], NAMES[3], NAMES[4], NAMES[5], "d0/new.txt"}


@pytest.mark.parametrize("prefix", ["", "p/q"])
def test_fast_path_vouches_for_exactly_what_the_general_path_does(
        tmp_path: Path, catalog: Catalog, prefix: str) -> None:
    src = make_tree(tmp_path / "src", {n: f"content of {n}" for n in NAMES})
    mem = MemoryBackend("vouch")
    _push(src, mem, catalog, prefix=prefix)
    diverged = _diverge(tmp_path, src, mem, catalog, prefix)
    key_prefix = prefix + "/" if prefix else ""
    # f06's object: recorded as made from a hard link to it (same size, mtime and inode; only
    # the path differs), a state no push makes of identical bytes but one the check covers.
    linked = tmp_path / "linked" / NAMES[6]
    linked.parent.mkdir(parents=True)
    os.link(src / NAMES[6], linked)
    _push(linked.parent.parent, MemoryBackend("linked"), catalog)
    catalog.db.execute(
        "UPDATE objects SET file_id = (SELECT id FROM files WHERE path = ?) "
        "WHERE remote = ? AND key = ?", (str(linked), mem.url, key_prefix + NAMES[6]))
    diverged.add(NAMES[6])
    batch = _entries(src)
    template = Template.compile("{rel_path}")
    for algorithm in ("blake3", "sha256"):
        vouched = push_mod._vouched(batch, catalog, mem.url, key_prefix, template, algorithm)
        general = [e[1] for i, e in enumerate(batch) if i not in vouched]
        fast = [e[1] for e in push_mod._changed(batch, catalog, mem.url, key_prefix, algorithm)]
        assert fast == general
        expected = sorted(diverged) if algorithm == "blake3" else sorted(e[1] for e in batch)
        assert sorted(fast) == expected  # blake3 was recorded; sha256 vouches for nothing
    assert push_mod._changed(batch, catalog, "mem://nowhere", key_prefix, "blake3") == batch


def test_real_rerun_uploads_exactly_what_its_dry_run_plans(tmp_path: Path,
                                                            catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {n: f"content of {n}" for n in NAMES})
    mem = MemoryBackend("rerun")
    _push(src, mem, catalog)
    _diverge(tmp_path, src, mem, catalog, "")
    dry = _push(src, mem, catalog, dry_run=True)
    planned = {a.key for a in dry.plan.actions if a.kind is ActionKind.UPLOAD}
    assert planned == {NAMES[1], NAMES[2], NAMES[4], "d0/new.txt"}  # f03, f05: same bytes
    real = _push(src, mem, catalog)
    job = catalog.job(real.job_id or 0)
    assert job is not None  # it uploads as it plans: its plan keeps only hashed skips
    assert {a.kind for a in real.plan.actions} == {ActionKind.SKIP}
    assert {t["key"] for t in job["transfers"] if t["outcome"] == "ok"} == planned
    assert real.counts()["uploaded"] == len(planned)
    assert real.counts()["skipped"] == len(NAMES) + 1 - len(planned)
    assert mem.objects[NAMES[1]].data == (src / NAMES[1]).read_bytes()  # this file's again
    again = _push(src, mem, catalog)
    assert (again.counts()["uploaded"], again.counts()["skipped"]) == (0, len(NAMES) + 1)


def test_a_file_whose_key_is_refused_is_refused_again_on_the_rerun(
        tmp_path: Path, catalog: Catalog) -> None:
    src = make_tree(tmp_path / "src", {"ok.txt": "fine", "bad\x07name.txt": "bell"})
    mem = MemoryBackend("refused")
    first = _push(src, mem, catalog)
    assert (first.counts()["uploaded"], first.failed) == (1, 1)
    again = _push(src, mem, catalog)  # not vouched for (no object), so checked and refused
    assert (again.counts()["skipped"], again.failed) == (1, 1)
    assert any("control character" in p.message for p in again.plan.problems)


def test_the_rerun_reads_the_objects_side_from_its_covering_index(catalog: Catalog) -> None:
    statements: list[str] = []
    catalog.db.set_trace_callback(statements.append)  # as run, with the values filled in
    try:
        catalog.unchanged_sources("mem://x", ["a", "b"], "blake3")
    finally:
        catalog.db.set_trace_callback(None)
    (select,) = [s for s in statements if s.startswith("SELECT")]
    plan = catalog.db.execute("EXPLAIN QUERY PLAN " + select).fetchall()
    assert any("COVERING INDEX objects_unchanged" in row[3] for row in plan), plan
