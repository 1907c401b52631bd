"""``safepath.Existing``: what is at root/rel, reached without following symlinks, for many
paths at once — a missing folder is remembered (its paths are missing without a look), and
nothing else is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hoard.safepath import Existing, UnsafePath, check_relative


def test_paths_below_a_missing_folder_are_missing_without_a_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "here.txt").write_text("x")
    look = Existing()
    assert look.stat(str(tmp_path / "new"), "x/y.txt") is None  # the root is missing
    assert look.stat(str(tmp_path), "a/b/c/one.txt") is None  # a/b is missing
    opened: list[str] = []
    real_open = os.open

    def watch(path: str, *args: object, **kwargs: object) -> int:
        opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", watch)
    assert look.stat(str(tmp_path / "new"), "z.txt") is None
    assert look.stat(str(tmp_path), "a/b/c/two.txt") is None
    assert look.stat(str(tmp_path), "a/b/three.txt") is None
    assert opened == []
    # a missing file does not make its folder missing
    assert look.stat(str(tmp_path), "a/gone.txt") is None
    st = look.stat(str(tmp_path), "a/here.txt")
    assert st is not None and st.st_size == 1
    assert opened  # those were looked at


def test_a_symlinked_folder_or_a_file_in_the_way_is_refused_not_missing(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f.txt").write_text("x")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "root" / "file").write_text("x")
    (tmp_path / "root" / "target").symlink_to(tmp_path / "elsewhere" / "f.txt")
    look = Existing()
    with pytest.raises(UnsafePath, match="symlink or not a folder"):
        look.stat(str(tmp_path / "root"), "link/f.txt")
    with pytest.raises(UnsafePath, match="symlink or not a folder"):
        look.stat(str(tmp_path / "root"), "file/f.txt")
    st = look.stat(str(tmp_path / "root"), "target")  # the link itself, not followed
    assert st is not None and os.path.islink(tmp_path / "root" / "target")
    assert st.st_size != 1


@pytest.mark.parametrize("rel", ["a\x00b", "x\x1fy", "del\x7f", "c1\x85", "c1\x9f"])
def test_control_characters_are_refused(rel: str) -> None:
    with pytest.raises(UnsafePath, match="control character"):
        check_relative(rel)


def test_ordinary_names_pass(tmp_path: Path) -> None:
    assert check_relative("Photos 2025/été\u00a0/IMG~1.jpg") == [
        "Photos 2025",
        "été\u00a0",
        "IMG~1.jpg",
    ]
