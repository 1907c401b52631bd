"""A no-change rerun plans in memory that does not grow with the tree (issue 7): the plan
keeps no object per file the catalog vouches for, and the key check lives on disk."""

from __future__ import annotations

import gc
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest

from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.push import PushSettings, build_plan, run_push
from hoard.report import NullReporter
from hoard.scan import ScanStats
from tests.conftest import make_tree

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
