"""Plans with more kept actions than a batch, whose actions wait on disk: a conflict across
the spill boundary is still refused before anything moves, naming both files; a dry run prints
every decision in scan order; the real run executes exactly that plan."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from hoard.actionstore import BATCH
from hoard.backends.memory import MemoryBackend
from hoard.catalog import Catalog
from hoard.console import print_plan
from hoard.errors import KeyConflict
from hoard.model import ActionKind
from hoard.plan import Plan, decide
from hoard.push import PushSettings, build_plan, run_push
from hoard.report import NullReporter
from hoard.scan import ScanStats
from hoard.units import format_size
from tests.conftest import make_tree
from tests.test_plan import make_file, upload

#: Files between the two that conflict: more than a batch of actions goes to disk between them.
MANY = 3 * BATCH


def _conflicting_tree(root: Path) -> Path:
    files: dict[str, bytes | str] = {"a/dup.txt": "first"}
    files |= {f"m/d{i // 500}/f{i:05d}.txt": str(i) for i in range(MANY)}
    files["z/dup.txt"] = "second"
    return make_tree(root, files)


def test_a_conflict_across_the_spill_boundary_is_refused_before_anything_moves(
    tmp_path: Path, catalog: Catalog
) -> None:
    src = _conflicting_tree(tmp_path / "src")
    mem = MemoryBackend("spill")
    settings = PushSettings(sources=(str(src),), remote=mem.url, template="p/{filename}")
    with pytest.raises(KeyConflict) as err:
        run_push(settings, mem, catalog, NullReporter(), time.time_ns)
    assert str(src / "a/dup.txt") in str(err.value)
    assert str(src / "z/dup.txt") in str(err.value)
    assert err.value.exit_code == 4
    assert mem.objects == {} and [op for op, _ in mem.calls if op == "put"] == []
    assert catalog.jobs() == []


def test_a_kept_action_read_back_from_disk_is_marked_a_conflict(
    tmp_path: Path, catalog: Catalog
) -> None:
    src = _conflicting_tree(tmp_path / "src")
    mem = MemoryBackend("spill")
    settings = PushSettings(sources=(str(src),), remote=mem.url, template="p/{filename}")
    plan = build_plan(settings, mem, catalog, NullReporter(), datetime.now(), ScanStats())
    reason = f"conflict: {src / 'z/dup.txt'} and {src / 'a/dup.txt'} both render to this key"
    kept = plan.actions
    assert [(a.kind, a.file.path, a.reason) for a in (kept[0], kept[-1])] == [
        (ActionKind.CONFLICT, str(src / "a/dup.txt"), reason),
        (ActionKind.CONFLICT, str(src / "z/dup.txt"), reason),
    ]
    assert {a.kind for a in kept[1:-1]} == {ActionKind.UPLOAD}
    t = plan.totals()
    assert (t["upload"], t["conflict"]) == (MANY, 2)
    assert t["upload_bytes"] == sum(len(str(i)) for i in range(MANY))


def test_plan_marks_and_drops_across_the_spill_boundary() -> None:
    plan = Plan(keep_skips=False)
    plan.add(upload("/x/a.jpg", "a.jpg", size=5))
    plan.add(upload("/x/b.jpg", "b.jpg", size=6))
    for i in range(MANY):
        plan.add(upload(f"/x/f{i}", f"k{i}", size=1))
    plan.add(upload("/y/a.jpg", "a.jpg", size=7))  # a conflict with a file on disk
    plan.add(upload("/x/b.jpg", "b.jpg", size=6))  # the same file again: dropped
    plan.add(decide(make_file("/x/f3"), "k3", "blake3:00", None))  # again, far apart
    kept = plan.actions
    assert [(a.kind, a.file.path) for a in kept[:2]] == [
        (ActionKind.CONFLICT, "/x/a.jpg"),
        (ActionKind.UPLOAD, "/x/b.jpg"),
    ]
    assert [(a.kind, a.file.path) for a in kept[-1:]] == [(ActionKind.CONFLICT, "/y/a.jpg")]
    assert len(kept) == MANY + 3
    t = plan.totals()
    assert (t["files"], t["upload"], t["conflict"], t["upload_bytes"]) == (
        MANY + 3,
        MANY + 1,
        2,
        MANY + 6,
    )


def test_dry_run_prints_every_decision_in_scan_order_across_the_spill_boundary(
    tmp_path: Path, catalog: Catalog
) -> None:
    n = MANY + 100
    rels = [f"d{i // 400:02d}/f{i:05d}.txt" for i in range(n)]
    src = tmp_path / "src"
    make_tree(src, {r: "x" * (i % 5) for i, r in enumerate(rels) if i % 3 == 0})
    mem = MemoryBackend("spill")
    settings = PushSettings(sources=(str(src),), remote=mem.url, prefix="p")
    assert run_push(settings, mem, catalog, NullReporter(), time.time_ns).outcome == "ok"
    make_tree(src, {r: "x" * (i % 5) for i, r in enumerate(rels) if i % 3})  # new files

    dry = run_push(replace(settings, dry_run=True), mem, catalog, NullReporter(), time.time_ns)
    out = io.StringIO()
    print_plan(out, dry.plan)

    expected = [
        f"skip     p/{r}  <- {src / r}  (unchanged)"
        if i % 3 == 0
        else f"upload   p/{r}  <- {src / r}  (new)"
        for i, r in enumerate(rels)
    ]
    new = [i for i in range(n) if i % 3]
    expected.append(
        f"plan: {len(new)} to upload ({format_size(sum(i % 5 for i in new))}), "
        f"{n - len(new)} unchanged, 0 conflicts, 0 failed; nothing was moved (dry run)"
    )
    assert out.getvalue().splitlines() == expected
    real = run_push(settings, mem, catalog, NullReporter(), time.time_ns)
    assert (real.outcome, real.counts()["uploaded"]) == ("ok", len(new))
    assert sorted(mem.objects) == [f"p/{r}" for r in rels]
