"""Memory that does not grow with the tree. A no-change rerun plans in it (issue 7): the plan
keeps no object per file the catalog vouches for, and the key check lives on disk. A first
push, a dry run and a first push onto a remote that holds the files run in it too: the kept
actions wait on disk beyond a batch, the uploads read them lazily, and the remote's listing
goes into a scratch table."""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

import hoard.plan
from hoard.backends.localfs import LocalBackend
from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.console import print_plan
from hoard.push import PushSettings, build_plan, run_push
from hoard.report import NullReporter
from hoard.scan import ScanStats
from tests.conftest import make_tree

T = TypeVar("T")
SMALL = 1500  # more than a batch of keys (INDEX_BATCH) at the smaller size too


def _tree(root: Path, files: int) -> Path:
    return make_tree(
        root, {f"d{i // 100:03d}/s{i % 7}/f{i:05d}.txt": str(i % 3) for i in range(files)}
    )


def _planning_peak(settings: PushSettings, backend: MemoryBackend, catalog: Catalog) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        stats = ScanStats()
        plan = build_plan(settings, backend, catalog, NullReporter(), datetime.now(), stats)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    t = plan.totals()
    assert t["skip"] == t["files"] >= stats.files - 100 and plan.actions == []
    return peak


@pytest.mark.parametrize(
    ("template", "two_sources"), [("{rel_path}", False), ("{base_dir}/{filename}", True)]
)
def test_rerun_planning_memory_does_not_grow_with_the_tree(
    tmp_path: Path, catalog: Catalog, template: str, two_sources: bool
) -> None:
    peaks = []
    for n in (SMALL, 4 * SMALL):
        src = _tree(tmp_path / f"src{n}", n)
        sources = (str(src / "d000"), str(src)) if two_sources else (str(src),)
        mem = MemoryBackend(f"mem{n}")
        settings = PushSettings(
            sources=sources, remote=mem.url, base=str(src), template=template, prefix="p"
        )
        first = run_push(settings, mem, catalog, NullReporter(), time.time_ns)
        assert first.counts()["uploaded"] == n
        peaks.append(_planning_peak(settings, mem, catalog))
    # 4,500 more files: a plan holding an object per file grows by hundreds of bytes each.
    growth = peaks[1] - peaks[0]
    assert growth < 20 * 3 * SMALL, f"planning peak grew {growth} bytes: {peaks}"


# --- a first push, a dry run, a first push onto a remote that holds the files (issue 9) ------

#: More than a batch of kept actions (actionstore.BATCH) at the smaller size too.
FIRST = 1500


def _wide_tree(root: Path, files: int) -> Path:
    """Folders of at most ~150 files, the top one with a folder per 1,000: what the walk
    holds at once (a folder's entries) is the same at both sizes."""
    return make_tree(
        root, {f"d{i // 1000:02d}/s{i % 7}/f{i:05d}.txt": str(i % 3) for i in range(files)}
    )


def _peak(run: Callable[[], T]) -> tuple[int, T]:
    """The peak of traced memory while ``run`` runs, and what it returned."""
    gc.collect()
    tracemalloc.start()
    try:
        out = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out


@pytest.fixture
def small_action_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan holds up to a batch of kept actions in memory, as many as the tree leaves over
    after its last spill: 1,024 of about 0.8 KB each would hide growth (or fake it, when the
    larger tree happens to leave more over). A batch of 64 keeps that under 60 KB."""
    monkeypatch.setattr(hoard.plan, "ACTION_BATCH", 64)


def _assert_flat(peaks: list[int]) -> None:
    # 3 * FIRST more files: a plan holding an Action per file grows by about 0.8 KB each, and
    # any object kept per file by at least 40 bytes; what remains is where the walk stands.
    growth = peaks[1] - peaks[0]
    assert growth < 40 * 3 * FIRST, f"peak grew {growth} bytes: {peaks}"


def test_first_push_memory_does_not_grow_with_the_tree(
    tmp_path: Path, small_action_batch: None
) -> None:
    peaks = []
    for n in (FIRST, 4 * FIRST):
        src = _wide_tree(tmp_path / f"src{n}", n)
        dest = LocalBackend(str(tmp_path / f"dest{n}"))
        catalog = Catalog(str(tmp_path / f"c{n}.sqlite"))
        settings = PushSettings(sources=(str(src),), remote=dest.url, prefix="p", workers=1)
        peak, r = _peak(partial(run_push, settings, dest, catalog, NullReporter(), time.time_ns))
        assert (r.outcome, r.counts()["uploaded"]) == ("ok", n)
        peaks.append(peak)
        catalog.close()
    _assert_flat(peaks)


def _plan_and_print(settings: PushSettings, backend: MemoryBackend, catalog: Catalog) -> int:
    r = run_push(settings, backend, catalog, NullReporter(), time.time_ns)
    with open(os.devnull, "w") as out:
        print_plan(out, r.plan)
    return r.plan.totals()["upload"]


def test_dry_run_planning_and_printing_memory_does_not_grow_with_the_tree(
    tmp_path: Path, catalog: Catalog, small_action_batch: None
) -> None:
    peaks = []
    for n in (FIRST, 4 * FIRST):
        src = _wide_tree(tmp_path / f"src{n}", n)
        mem = MemoryBackend(f"mem{n}")
        settings = PushSettings(
            sources=(str(src),), remote=mem.url, prefix="p", workers=1, dry_run=True
        )

        peak, uploads = _peak(partial(_plan_and_print, settings, mem, catalog))
        assert uploads == n and mem.objects == {}
        peaks.append(peak)
    _assert_flat(peaks)


def test_first_push_onto_a_remote_holding_the_files_memory_does_not_grow(
    tmp_path: Path, small_action_batch: None
) -> None:
    """An empty catalog: every file is looked up in the remote's listing, and adopted."""
    peaks = []
    for n in (FIRST, 4 * FIRST):
        src = _wide_tree(tmp_path / f"src{n}", n)
        dest = LocalBackend(str(tmp_path / f"dest{n}"))
        settings = PushSettings(sources=(str(src),), remote=dest.url, prefix="p", workers=1)
        other = Catalog(str(tmp_path / f"other{n}.sqlite"))
        assert run_push(settings, dest, other, NullReporter(), time.time_ns).outcome == "ok"
        other.close()
        catalog = Catalog(str(tmp_path / f"c{n}.sqlite"))
        peak, r = _peak(partial(run_push, settings, dest, catalog, NullReporter(), time.time_ns))
        assert (r.outcome, r.counts()["uploaded"], r.counts()["skipped"]) == ("ok", 0, n)
        assert len(catalog.objects_under(dest.url, "")) == n  # adopted from the listing
        peaks.append(peak)
        catalog.close()
    _assert_flat(peaks)
