"""Key templates (every variable, formats, errors) and key validation, incl. property tests."""

from __future__ import annotations

import string
import unicodedata
import uuid
from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hoard.errors import InvalidKey, TemplateError
from hoard.keys import (
    DEFAULT_TEMPLATE,
    MAX_KEY_BYTES,
    VARIABLES,
    Context,
    Template,
    join_key,
    validate_key,
)
from hoard.model import LocalFile


def local_ns(*args: int) -> int:
    """Nanoseconds since the epoch of a naive *local* datetime, so tests pass in any TZ."""
    return int(datetime(*args).timestamp()) * 1_000_000_000


CREATED = local_ns(2025, 12, 24, 8, 24, 2)
MODIFIED = local_ns(2025, 11, 3, 17, 5, 9)
ACCESSED = local_ns(2025, 10, 1, 1, 2, 3)
NOW = datetime(2026, 1, 2, 3, 4, 5)
HASH = "ab" * 32


def make_file(
    rel_path: str = "test2/test3/DSC08007.jpg",
    root: str = "/data/test1",
    *,
    size: int = 1_572_864,
    mtime_ns: int = MODIFIED,
    ctime_ns: int = MODIFIED,
    atime_ns: int = ACCESSED,
    birthtime_ns: int | None = CREATED,
    base_given: bool = True,
    path: str | None = None,
) -> LocalFile:
    return LocalFile(
        path=path if path is not None else f"{root.rstrip('/')}/{rel_path}",
        root=root,
        rel_path=rel_path,
        size=size,
        mtime_ns=mtime_ns,
        ctime_ns=ctime_ns,
        atime_ns=atime_ns,
        birthtime_ns=birthtime_ns,
        inode=42,
        dev=7,
        base_given=base_given,
    )


def render(template: str, f: LocalFile | None = None, ctx: Context | None = None) -> str:
    return Template.compile(template).render(
        f if f is not None else make_file(), ctx if ctx is not None else Context(NOW, HASH)
    )


# --- every variable ------------------------------------------------------------------------

VARIABLE_CASES = {
    "date": "2026-01-02",
    "datetime": "2026-01-02_03-04-05",
    "file_created": "2025-12-24",
    "file_created_datetime": "2025-12-24_08-24-02",
    "file_modified": "2025-11-03",
    "file_modified_datetime": "2025-11-03_17-05-09",
    "file_accessed": "2025-10-01",
    "file_accessed_datetime": "2025-10-01_01-02-03",
    "filename": "DSC08007.jpg",
    "filename_no_ext": "DSC08007",
    "file_ext": "jpg",
    "file_size": "1572864",
    "file_size_mb": "1.50",
    "base_dir": "test2/test3",
    "base_dir_underscore": "test2_test3",
    "rel_path": "test2/test3/DSC08007.jpg",
    "hash": HASH,
}


def test_variable_cases_cover_every_variable() -> None:
    assert set(VARIABLE_CASES) | {"guid"} == set(VARIABLES)


@pytest.mark.parametrize(("name", "expected"), sorted(VARIABLE_CASES.items()))
def test_variable_renders(name: str, expected: str) -> None:
    assert render(f"x/{{{name}}}") == f"x/{expected}"


def test_issue_example() -> None:
    f = make_file("DSC08007.jpg", "/photos", birthtime_ns=CREATED)
    key = render("backup/{file_created:%Y-%m-%d}/{file_created_datetime}:{filename}", f)
    assert key == "backup/2025-12-24/2025-12-24_08-24-02:DSC08007.jpg"


def test_date_variables_take_strftime_spec_and_slashes_make_folders() -> None:
    f = make_file(mtime_ns=local_ns(2025, 12, 24, 8, 24, 2))
    assert render("{file_modified:%Y/%m}", f) == "2025/12"
    assert render("{file_modified:%Y/%m}/{filename}", f) == "2025/12/DSC08007.jpg"
    assert render("{date:%Y}/{datetime:%H%M%S}") == "2026/030405"


def test_other_variables_take_format_spec() -> None:
    assert render("{file_size:010d}") == "0001572864"
    assert render("{filename_no_ext:_>10}") == "__DSC08007"


def test_date_variables_truncate_subseconds() -> None:
    f = make_file(mtime_ns=local_ns(2025, 12, 24, 8, 24, 2) + 500_000_000)
    assert render("{file_modified_datetime}", f) == "2025-12-24_08-24-02"


def test_date_variables_do_not_round_up_into_the_next_second() -> None:
    f = make_file(mtime_ns=local_ns(2025, 12, 24, 23, 59, 59) + 999_999_700)
    assert render("{file_modified}|{file_modified_datetime}", f) == "2025-12-24|2025-12-24_23-59-59"


def test_file_created_prefers_birthtime() -> None:
    # birth time later than both ctime and mtime: still the birth time wins
    f = make_file(
        birthtime_ns=CREATED,
        ctime_ns=local_ns(2020, 1, 1, 0, 0, 0),
        mtime_ns=local_ns(2021, 1, 1, 0, 0, 0),
    )
    assert render("{file_created_datetime}", f) == "2025-12-24_08-24-02"


@pytest.mark.parametrize(
    ("ctime", "mtime"),
    [
        (local_ns(2024, 5, 6, 7, 8, 9), local_ns(2025, 1, 1, 0, 0, 0)),
        (local_ns(2025, 1, 1, 0, 0, 0), local_ns(2024, 5, 6, 7, 8, 9)),
    ],
)
def test_file_created_without_birthtime_is_min_of_ctime_mtime(ctime: int, mtime: int) -> None:
    f = make_file(birthtime_ns=None, ctime_ns=ctime, mtime_ns=mtime)
    assert render("{file_created}/{file_created_datetime}", f) == "2024-05-06/2024-05-06_07-08-09"


@pytest.mark.parametrize(
    ("rel_path", "stem", "ext"),
    [
        ("a/DSC08007.jpg", "DSC08007", "jpg"),
        ("a/archive.tar.gz", "archive.tar", "gz"),
        ("a/README", "README", ""),
        ("a/.bashrc", ".bashrc", ""),
        ("photo.JPEG", "photo", "JPEG"),
    ],
)
def test_filename_stem_and_ext(rel_path: str, stem: str, ext: str) -> None:
    f = make_file(rel_path)
    assert render("s={filename_no_ext}", f) == f"s={stem}"
    assert render("e={file_ext}", f) == f"e={ext}"
    assert render("{filename}", f) == rel_path.rpartition("/")[2]


@pytest.mark.parametrize(
    ("size", "mb"),
    [(0, "0.00"), (1_048_576, "1.00"), (1_572_864, "1.50"), (5_000_000, "4.77")],
)
def test_file_size_mb_is_mib_with_two_decimals(size: int, mb: str) -> None:
    assert render("{file_size_mb}", make_file(size=size)) == mb


def test_base_dir_with_base_given_is_the_folder_path_from_the_base() -> None:
    f = make_file("test2/test3/DSC08007.jpg", "/data/test1", base_given=True)
    assert render("{base_dir}/{filename}", f) == "test2/test3/DSC08007.jpg"
    assert render("{base_dir_underscore}/{filename}", f) == "test2_test3/DSC08007.jpg"


def test_base_dir_without_base_given_is_the_parent_folder_name() -> None:
    f = make_file("test2/test3/DSC08007.jpg", "/data/test1", base_given=False)
    assert render("{base_dir}/{filename}", f) == "test3/DSC08007.jpg"
    assert render("{base_dir_underscore}", f) == "test3"
    at_root = make_file("DSC08007.jpg", "/data/photos/", base_given=False)
    assert render("{base_dir}/{filename}", at_root) == "photos/DSC08007.jpg"


@pytest.mark.parametrize("var", ["base_dir", "base_dir_underscore"])
def test_empty_variable_leaves_no_empty_segment(var: str) -> None:
    f = make_file("DSC08007.jpg", "/data/test1", base_given=True)
    assert render(f"{{{var}}}/{{filename}}", f) == "DSC08007.jpg"
    assert render(f"pre/{{{var}}}/{{filename}}/", f) == "pre/DSC08007.jpg"


def test_guid_is_a_stable_uuid_per_path() -> None:
    f = make_file()
    g1 = render("{guid}", f)
    assert str(uuid.UUID(g1)) == g1
    # same path, other attributes changed: same guid; also stable across compiles
    assert render("{guid}", replace(f, size=1, mtime_ns=0, rel_path="x.jpg")) == g1
    assert render("{guid}", f, Context(datetime(2000, 1, 1), "ff")) == g1
    other = make_file(path="/data/test1/test2/test3/DSC08008.jpg")
    assert render("{guid}", other) != g1


def test_hash_comes_from_context_and_needs_hash() -> None:
    assert render("{hash}/{filename}", ctx=Context(NOW, "deadbeef")) == "deadbeef/DSC08007.jpg"
    assert Template.compile("{hash:.8}").needs_hash
    assert not Template.compile("{filename}/{guid}").needs_hash


def test_default_template_and_literal_braces() -> None:
    assert render(DEFAULT_TEMPLATE) == "test2/test3/DSC08007.jpg"
    assert render("{{x}}/{filename}") == "{x}/DSC08007.jpg"


def test_render_normalises_to_nfc() -> None:
    f = make_file("cafe\u0301.jpg", "/d")
    assert render("{filename}", f) == "caf\u00e9.jpg"


# --- template errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{nope}",
        "{}",
        "{0}",
        "{filename!r}",
        "{filename!s}",
        "{filename",
        "filename}",
        "/{filename}",
        "",
        "   ",
        "{file_size:zz}",
        "{filename:d}",
        "{file_size:{file_size}}",
        "{filename[0]}",
        "{filename.upper}",
    ],
)
def test_template_errors_at_compile(text: str) -> None:
    with pytest.raises(TemplateError):
        Template.compile(text)


def test_unknown_variable_error_names_it() -> None:
    with pytest.raises(TemplateError, match="nope"):
        Template.compile("a/{nope}/{filename}")


# --- render of a file whose name makes an invalid key --------------------------------------


@pytest.mark.parametrize(
    "name",
    ["bad\x01name.jpg", "tab\there.jpg", "a\udcff.jpg", "x" * (MAX_KEY_BYTES + 1)],
)
def test_render_invalid_key_names_the_file(name: str) -> None:
    f = make_file(name, "/data/src")
    with pytest.raises(InvalidKey) as info:
        Template.compile("{filename}").render(f, Context(NOW))
    assert f.path in str(info.value)


def test_template_literal_dotdot_is_invalid_at_render() -> None:
    with pytest.raises(InvalidKey):
        render("../{filename}")


# --- validate_key --------------------------------------------------------------------------


def test_validate_key_returns_nfc() -> None:
    assert validate_key("caf" + "e\u0301" + "/x") == "caf\u00e9/x"
    assert validate_key("plain/key.txt") == "plain/key.txt"


@pytest.mark.parametrize(
    "key",
    ["", "/", "/a", "a//b", "a/", "..", ".", "../a", "a/..", "a/../b", "a/./b", "./a"],
)
def test_validate_key_rejects_bad_segments(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("key", ["...", ".hidden", "a..b", "a/.x/..y/z.", "a b", "a:b"])
def test_validate_key_accepts_dotty_but_safe_segments(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
def test_validate_key_rejects_control_characters(ch: str) -> None:
    with pytest.raises(InvalidKey, match="control"):
        validate_key(f"a{ch}b")


@pytest.mark.parametrize("ch", [" ", "~", "\xa0", "\u00e9"])
def test_validate_key_accepts_neighbours_of_control_ranges(ch: str) -> None:
    assert validate_key(f"a{ch}b") == f"a{ch}b"


@pytest.mark.parametrize(
    "key",
    [
        "a" * 1024,
        "\u00e9" * 512,  # 2 bytes each
        "\u20ac" * 341 + "a",  # 3 * 341 + 1
        "d/" * 511 + "ab",
    ],
)
def test_validate_key_accepts_exactly_1024_bytes(key: str) -> None:
    assert len(key.encode("utf-8")) == MAX_KEY_BYTES
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["a" * 1025, "\u00e9" * 512 + "a", "\u20ac" * 342, "\U0001f600" * 257],
)
def test_validate_key_rejects_over_1024_bytes(key: str) -> None:
    assert len(key.encode("utf-8")) > MAX_KEY_BYTES
    with pytest.raises(InvalidKey, match="1024"):
        validate_key(key)


def test_validate_key_counts_bytes_of_the_nfc_form() -> None:
    decomposed = "e\u0301" * 512  # 1536 bytes as given, 1024 once composed
    assert validate_key(decomposed) == "\u00e9" * 512


@pytest.mark.parametrize("key", ["a\udcff", "\ud800", "x/\udfff/y", "photo-\udce9.jpg"])
def test_validate_key_rejects_lone_surrogates(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_validate_key_error_names_origin() -> None:
    with pytest.raises(InvalidKey, match="/src/the-origin"):
        validate_key("a/../b", origin="/src/the-origin")


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        ("", "a/b.jpg", "a/b.jpg"),
        ("/", "a/b.jpg", "a/b.jpg"),
        ("backup", "a/b.jpg", "backup/a/b.jpg"),
        ("backup/", "a", "backup/a"),
        ("/backup/2025/", "a", "backup/2025/a"),
    ],
)
def test_join_key(prefix: str, key: str, expected: str) -> None:
    assert join_key(prefix, key) == expected


# --- properties ----------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # includes surrogates and controls
TRICKY = st.sampled_from(
    ["", ".", "..", "/", "\x00", "\x1f", "\x7f", "\x85", "e\u0301", "\udcff", "\u20ac", "a"]
)
SEGMENT = st.one_of(TRICKY, st.text(ANY_CHAR, max_size=12))
MOSTLY_OK_SEGMENT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/"), min_size=1, max_size=10
)
KEYISH = st.one_of(
    st.text(ANY_CHAR),
    st.lists(MOSTLY_OK_SEGMENT, min_size=1, max_size=8).map("/".join),
    st.lists(SEGMENT, max_size=8).map("/".join),
    st.lists(st.sampled_from(["a", "\u00e9", "e\u0301", "\u20ac", "/", "\U0001f600"]),
             min_size=300, max_size=1100).map("".join),
)


def _is_safe(key: str) -> None:
    assert unicodedata.is_normalized("NFC", key)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert not any(unicodedata.category(c) == "Cc" for c in key)
    assert not key.startswith("/")
    assert all(seg not in ("", ".", "..") for seg in key.split("/"))


@settings(max_examples=300)
@given(KEYISH)
def test_validate_key_property_raises_or_returns_safe_nfc(text: str) -> None:
    try:
        out = validate_key(text)
    except InvalidKey:
        return
    _is_safe(out)
    assert out == unicodedata.normalize("NFC", text)
    assert validate_key(out) == out


SAFE_SEGMENT = st.text(
    string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=20
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=300)
@given(st.lists(SAFE_SEGMENT, min_size=1, max_size=12).map("/".join))
def test_validate_key_accepts_safe_segment_keys_unchanged(key: str) -> None:
    assert validate_key(key) == key
