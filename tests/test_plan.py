"""plan.decide (one file against what is known of its key) and plan.Plan (conflicts, totals)."""

from __future__ import annotations

import pytest

from hoard.model import Action, ActionKind, Delete, LocalFile, RemoteObject
from hoard.plan import INDEX_BATCH, Known, Plan, decide

HASH = "1" * 64
OTHER_HASH = "2" * 64


def make_file(path: str = "/src/a.jpg", size: int = 10) -> LocalFile:
    root, _, rel = path.rpartition("/")
    return LocalFile(
        path=path,
        root=root or "/",
        rel_path=rel,
        size=size,
        mtime_ns=1,
        ctime_ns=1,
        atime_ns=1,
        birthtime_ns=None,
        inode=1,
        dev=1,
    )


def upload(path: str, key: str, size: int = 10) -> Action:
    return decide(make_file(path, size), key, HASH, None)


# --- decide --------------------------------------------------------------------------------


def test_decide_new_without_known() -> None:
    f = make_file()
    a = decide(f, "k/a.jpg", HASH, None)
    assert a.kind is ActionKind.UPLOAD
    assert a.reason == "new"
    assert (a.file, a.key, a.hash, a.adopt) == (f, "k/a.jpg", HASH, None)


def test_decide_unchanged_from_catalog() -> None:
    f = make_file(size=10)
    a = decide(f, "k", HASH, Known(size=10, hash=HASH, source="catalog"))
    assert a.kind is ActionKind.SKIP
    assert a.reason == "unchanged"
    assert a.hash == HASH
    assert a.adopt is None


def test_decide_unchanged_from_remote_adopts_the_object() -> None:
    f = make_file(size=10)
    obj = RemoteObject(key="k", size=10, etag="e", metadata={"hoard-hash": HASH})
    a = decide(f, "k", HASH, Known(size=10, hash=HASH, source="remote", remote=obj))
    assert a.kind is ActionKind.SKIP
    assert a.reason.startswith("unchanged")
    assert a.adopt is obj


def test_decide_remote_object_without_hoard_hash_uploads() -> None:
    f = make_file(size=10)
    obj = RemoteObject(key="k", size=10)
    a = decide(f, "k", HASH, Known(size=10, hash=None, source="remote", remote=obj))
    assert a.kind is ActionKind.UPLOAD
    assert a.reason == "changed: remote object has no hoard hash"
    assert a.adopt is None


@pytest.mark.parametrize("source", ["catalog", "remote"])
def test_decide_size_changed(source: str) -> None:
    f = make_file(size=12)
    a = decide(f, "k", HASH, Known(size=10, hash=OTHER_HASH, source=source))
    assert a.kind is ActionKind.UPLOAD
    assert a.reason == "changed: size 10 → 12"
    assert a.hash == HASH


@pytest.mark.parametrize("source", ["catalog", "remote"])
def test_decide_same_size_other_hash_is_content_change(source: str) -> None:
    f = make_file(size=10)
    a = decide(f, "k", HASH, Known(size=10, hash=OTHER_HASH, source=source))
    assert a.kind is ActionKind.UPLOAD
    assert a.reason == "changed: content"
    assert a.adopt is None


@pytest.mark.parametrize("hashed", [True, False])
@pytest.mark.parametrize(
    "known",
    [
        None,
        Known(size=10, hash=HASH, source="catalog"),
        Known(size=10, hash=HASH, source="remote", remote=RemoteObject(key="k", size=10)),
        Known(size=10, hash=None, source="remote"),
        Known(size=9, hash=OTHER_HASH, source="catalog"),
        Known(size=10, hash=OTHER_HASH, source="catalog"),
    ],
)
def test_decide_carries_hashed_flag(known: Known | None, hashed: bool) -> None:
    assert decide(make_file(size=10), "k", HASH, known, hashed=hashed).hashed is hashed


def test_decide_hashed_defaults_to_true() -> None:
    assert decide(make_file(), "k", HASH, None).hashed is True


# --- Plan ----------------------------------------------------------------------------------


def test_plan_keeps_distinct_keys_in_order() -> None:
    plan = Plan()
    plan.add(upload("/s/a", "a"))
    plan.add(upload("/s/b", "b"))
    assert [a.key for a in plan.actions] == ["a", "b"]
    assert all(a.kind is ActionKind.UPLOAD for a in plan.actions)
    assert plan.conflicts == []


def test_plan_two_files_one_key_both_conflict() -> None:
    plan = Plan()
    plan.add(upload("/x/a.jpg", "a.jpg"))
    plan.add(decide(make_file("/y/a.jpg"), "a.jpg", HASH, Known(10, HASH, "catalog")))
    assert [a.kind for a in plan.actions] == [ActionKind.CONFLICT, ActionKind.CONFLICT]
    assert [a.file.path for a in plan.actions] == ["/x/a.jpg", "/y/a.jpg"]
    for a in plan.actions:
        assert a.key == "a.jpg"
        assert "/x/a.jpg" in a.reason
        assert "/y/a.jpg" in a.reason
    assert len(plan.conflicts) == 2
    assert plan.totals()["conflict"] == 2
    assert plan.totals()["upload"] == 0
    assert plan.totals()["skip"] == 0


def test_plan_third_file_with_same_key_conflicts_too() -> None:
    plan = Plan()
    for p in ("/x/a.jpg", "/y/a.jpg", "/z/a.jpg"):
        plan.add(upload(p, "a.jpg"))
    plan.add(upload("/x/b.jpg", "b.jpg"))
    assert [a.kind for a in plan.actions] == [ActionKind.CONFLICT] * 3 + [ActionKind.UPLOAD]
    assert [c.path for c in plan.conflicts] == ["/x/a.jpg", "/y/a.jpg", "/z/a.jpg"]
    assert "/z/a.jpg" in plan.conflicts[2].reason
    assert plan.totals()["conflict"] == 3


def test_plan_same_file_twice_is_kept_once() -> None:
    plan = Plan()
    first = upload("/x/a.jpg", "a.jpg")
    plan.add(first)
    plan.add(decide(make_file("/x/a.jpg"), "a.jpg", HASH, Known(10, HASH, "catalog")))
    assert plan.actions == [first]
    assert plan.conflicts == []
    assert plan.totals()["files"] == 1


def test_plan_same_file_twice_after_a_conflict_is_kept_once() -> None:
    plan = Plan()
    plan.add(upload("/x/a.jpg", "a.jpg"))
    plan.add(upload("/y/a.jpg", "a.jpg"))
    plan.add(upload("/y/a.jpg", "a.jpg"))  # /y reached again through an overlapping source
    assert [a.file.path for a in plan.actions] == ["/x/a.jpg", "/y/a.jpg"]
    assert plan.totals()["conflict"] == 2


def test_plan_fail_actions_are_kept_and_counted() -> None:
    plan = Plan()
    f = make_file("/x/bad.jpg", size=99)
    plan.add(upload("/x/a.jpg", "a.jpg"))
    plan.fail(f, "a.jpg", "cannot read: permission denied")
    plan.fail(f, "a.jpg", "cannot read: permission denied")
    fails = [a for a in plan.actions if a.kind is ActionKind.FAIL]
    assert len(fails) == 2
    assert fails[0].file is f
    assert fails[0].reason == "cannot read: permission denied"
    assert plan.actions[0].kind is ActionKind.UPLOAD  # a failure is no conflict
    t = plan.totals()
    assert (t["files"], t["fail"], t["upload"], t["conflict"]) == (3, 2, 1, 0)
    assert t["upload_bytes"] == 10


def test_plan_add_keeps_fail_actions() -> None:
    plan = Plan()
    a = Action(ActionKind.FAIL, make_file("/x/a"), "k", "boom")
    plan.add(a)
    plan.add(Action(ActionKind.FAIL, make_file("/x/a"), "k", "boom"))
    assert plan.actions == [a, a]
    assert plan.totals()["fail"] == 2


def test_plan_totals() -> None:
    plan = Plan()
    plan.add(upload("/s/u1", "u1", size=10))
    plan.add(upload("/s/u2", "u2", size=20))
    plan.add(decide(make_file("/s/s1", 1000), "s1", HASH, Known(1000, HASH, "catalog")))
    plan.add(upload("/s/c1", "c", size=5))
    plan.add(upload("/t/c1", "c", size=7))
    plan.fail(make_file("/s/f1", 3), "f1", "unreadable")
    plan.deletes.append(Delete("gone", "extra: not in the source", RemoteObject("gone", 40)))
    assert plan.totals() == {
        "files": 6,
        "upload": 2,
        "skip": 1,
        "conflict": 2,
        "fail": 1,
        "upload_bytes": 30,
        "delete": 1,
        "delete_bytes": 40,
    }


def test_empty_plan_totals_are_zero() -> None:
    assert Plan().totals() == {
        "files": 0,
        "upload": 0,
        "skip": 0,
        "conflict": 0,
        "fail": 0,
        "upload_bytes": 0,
        "delete": 0,
        "delete_bytes": 0,
    }


# --- Plan without kept skips (a real run) ----------------------------------------------------


def test_plan_without_keep_skips_counts_vouched_skips_and_keeps_what_the_run_acts_on() -> None:
    plan = Plan(keep_skips=False)
    plan.add(upload("/s/u", "u"))
    plan.add(decide(make_file("/s/vouched"), "v", HASH, Known(10, HASH, "catalog"), hashed=False))
    plan.skip_unchanged("w", "/s/also-vouched")
    hashed = decide(make_file("/s/hashed"), "h", HASH, Known(10, HASH, "catalog"), hashed=True)
    plan.add(hashed)
    obj = RemoteObject(key="r", size=10)
    adopted = decide(make_file("/s/adopted"), "r", HASH, Known(10, HASH, "remote", obj), False)
    plan.add(adopted)
    assert [a.key for a in plan.actions] == ["u", "h", "r"]
    assert plan.skipped == 4
    t = plan.totals()
    assert (t["files"], t["upload"], t["skip"], t["conflict"]) == (5, 1, 4, 0)


def test_plan_finds_a_conflict_between_files_far_apart() -> None:
    plan = Plan(keep_skips=False)
    plan.skip_unchanged("photos/a.jpg", "/x/a.jpg")
    for i in range(3 * INDEX_BATCH):
        plan.skip_unchanged(f"k{i}", f"/x/f{i}")
    plan.add(upload("/y/a.jpg", "photos/a.jpg"))
    plan.skip_unchanged("k7", "/z/f7")
    conflicts = {(c.key, c.path): c.reason for c in plan.conflicts}
    assert conflicts == {
        ("photos/a.jpg", "/x/a.jpg"): "conflict: /y/a.jpg and /x/a.jpg both render to this key",
        ("photos/a.jpg", "/y/a.jpg"): "conflict: /y/a.jpg and /x/a.jpg both render to this key",
        ("k7", "/x/f7"): "conflict: /z/f7 and /x/f7 both render to this key",
        ("k7", "/z/f7"): "conflict: /z/f7 and /x/f7 both render to this key",
    }
    assert [(a.kind, a.file.path) for a in plan.actions] == [(ActionKind.CONFLICT, "/y/a.jpg")]
    t = plan.totals()
    assert (t["files"], t["skip"], t["upload"], t["conflict"]) == (
        3 * INDEX_BATCH + 3,
        3 * INDEX_BATCH - 1,
        0,
        4,
    )


def test_plan_drops_the_same_file_again_in_any_batch() -> None:
    plan = Plan()
    first = upload("/x/a.jpg", "a.jpg")
    plan.add(first)
    for i in range(INDEX_BATCH + 5):
        plan.skip_unchanged(f"k{i}", f"/x/f{i}")
    plan.add(upload("/x/a.jpg", "a.jpg"))  # far apart: another batch
    plan.add(upload("/x/b.jpg", "b.jpg"))
    plan.add(upload("/x/b.jpg", "b.jpg"))  # right after: the same batch
    assert [a.file.path for a in plan.actions] == ["/x/a.jpg", "/x/b.jpg"]
    assert plan.actions[0] is first
    assert plan.conflicts == []
    assert plan.totals()["files"] == INDEX_BATCH + 7
