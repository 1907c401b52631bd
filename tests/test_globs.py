"""hoard.globs: glob patterns compiled to regular expressions, directory pruning, splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoard.globs import Glob, compile_all, has_glob, split_pattern


def matches(pattern: str, path: str) -> bool:
    return Glob.compile(pattern).match(path)


# --- single-segment wildcards ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.txt", True),
        (".txt", True),  # `*` matches the empty string
        ("abc.def.txt", True),
        ("a.txt.bak", False),
        ("dir/a.txt", False),  # `*` never crosses a folder boundary
    ],
)
def test_star_matches_within_one_segment(path: str, expected: bool) -> None:
    assert Glob.compile("d/*.txt").match("d/" + path) is expected


def test_star_in_path_pattern_does_not_cross_slash() -> None:
    assert matches("src/*.py", "src/a.py")
    assert not matches("src/*.py", "src/pkg/a.py")
    assert not matches("src/*.py", "other/a.py")


def test_question_mark_matches_exactly_one_non_slash_character() -> None:
    assert matches("d/img?.jpg", "d/img1.jpg")
    assert not matches("d/img?.jpg", "d/img.jpg")
    assert not matches("d/img?.jpg", "d/img12.jpg")
    assert not matches("d/a?b", "d/a/b")


def test_bracket_class_matches_listed_characters_and_ranges() -> None:
    assert matches("d/[abc].txt", "d/a.txt")
    assert matches("d/[abc].txt", "d/c.txt")
    assert not matches("d/[abc].txt", "d/d.txt")
    assert not matches("d/[abc].txt", "d/ab.txt")
    assert matches("d/[0-9][0-9].log", "d/42.log")
    assert not matches("d/[0-9][0-9].log", "d/4x.log")


def test_negated_bracket_class_matches_other_characters() -> None:
    assert matches("d/[!abc].txt", "d/d.txt")
    assert matches("d/[!abc].txt", "d/z.txt")
    assert not matches("d/[!abc].txt", "d/a.txt")
    assert not matches("d/[!abc].txt", "d/b.txt")


def test_bracket_with_leading_close_bracket_is_literal() -> None:
    assert matches("d/[]x].txt", "d/].txt")
    assert matches("d/[]x].txt", "d/x.txt")
    assert not matches("d/[]x].txt", "d/y.txt")


def test_unclosed_bracket_is_a_literal() -> None:
    assert matches("d/a[b", "d/a[b")
    assert not matches("d/a[b", "d/ab")


def test_regex_metacharacters_are_literal() -> None:
    assert matches("d/a+b(1).$x", "d/a+b(1).$x")
    assert not matches("d/a.b", "d/axb")


# --- `**` ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.jpg", True),  # zero folders
        ("x/a.jpg", True),
        ("x/y/z/a.jpg", True),
        ("x/a.png", False),
        ("xa.jpg/", False),
    ],
)
def test_double_star_at_start_matches_zero_or_more_folders(path: str, expected: bool) -> None:
    assert matches("**/*.jpg", path) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b.txt", True),  # zero folders in between
        ("a/x/b.txt", True),
        ("a/x/y/b.txt", True),
        ("ab.txt", False),
        ("a/x/c.txt", False),
        ("z/a/b.txt", False),  # anchored at the start
        ("a/xb.txt", False),  # `**/` consumes whole segments only
    ],
)
def test_double_star_in_middle_matches_zero_or_more_folders(path: str, expected: bool) -> None:
    assert matches("a/**/b.txt", path) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b", True),
        ("a/b/c/d.txt", True),
        ("ab", False),
        ("b/a/c", False),
    ],
)
def test_double_star_at_end_matches_everything_below(path: str, expected: bool) -> None:
    assert matches("a/**", path) is expected


def test_bare_double_star_matches_every_path() -> None:
    g = Glob.compile("**")
    assert g.match("a")
    assert g.match("a/b/c")


def test_double_star_inside_a_segment_acts_like_single_star() -> None:
    assert matches("d/x**y", "d/xaby")
    assert not matches("d/x**y", "d/xa/by")


# --- brace sets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("v.jpg", True), ("v.png", True), ("v.gif", False), ("v.jpgx", False), ("v.", False)],
)
def test_brace_set_matches_any_alternative(path: str, expected: bool) -> None:
    assert matches("*.{jpg,png}", path) is expected


def test_nested_brace_sets() -> None:
    g = Glob.compile("*.{jp{g,eg},png}")
    for name in ("a.jpg", "a.jpeg", "a.png"):
        assert g.match(name), name
    for name in ("a.jp", "a.jpgeg", "a.jpe", "a.pn"):
        assert not g.match(name), name


def test_brace_alternatives_may_contain_wildcards_and_empty_items() -> None:
    g = Glob.compile("d/{a*,b?,}x")
    assert g.match("d/aaax")
    assert g.match("d/bzx")
    assert g.match("d/x")  # the empty alternative
    assert not g.match("d/bx")


def test_brace_alternatives_with_slashes_select_folders() -> None:
    g = Glob.compile("{photos,videos}/**/*.{mp4,jpg}")
    assert g.match("photos/2020/a.jpg")
    assert g.match("videos/a.mp4")
    assert not g.match("music/a.mp4")


def test_close_brace_and_comma_outside_braces_are_literal() -> None:
    assert matches("d/a,b}", "d/a,b}")
    assert not matches("d/a,b}", "d/a")


@pytest.mark.parametrize("pattern", ["*.{jpg,png", "{", "a/{b,{c,d}", "x{y"])
def test_unclosed_brace_raises_value_error(pattern: str) -> None:
    with pytest.raises(ValueError, match="unclosed"):
        Glob.compile(pattern)


def test_compile_all_propagates_value_error_and_compiles_in_order() -> None:
    globs = compile_all(["*.a", "d/*.b"])
    assert [g.pattern for g in globs] == ["*.a", "d/*.b"]
    with pytest.raises(ValueError):
        compile_all(["*.a", "{oops"])


# --- name-only patterns -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["x.tmp", "a/x.tmp", "a/b/c/x.tmp"])
def test_name_only_pattern_matches_basename_at_any_depth(path: str) -> None:
    g = Glob.compile("*.tmp")
    assert g.name_only
    assert g.match(path)


def test_name_only_pattern_does_not_match_folder_part() -> None:
    g = Glob.compile("*.tmp")
    assert not g.match("a.tmp/x.txt")
    assert not g.match("a/x.tmp.txt")


def test_pattern_with_slash_is_anchored_at_root() -> None:
    g = Glob.compile("a/*.tmp")
    assert not g.name_only
    assert g.match("a/x.tmp")
    assert not g.match("b/a/x.tmp")


def test_whitespace_is_significant() -> None:
    """A file name may begin or end with a space; a pattern is never silently stripped."""
    g = Glob.compile(" a.tmp")
    assert g.match("x/ a.tmp")
    assert not g.match("x/a.tmp")


def test_leading_slash_is_stripped_for_path_patterns() -> None:
    g = Glob.compile("/a/*.txt")
    assert g.match("a/b.txt")
    assert not g.match("/a/b.txt")


def test_leading_slash_anchors_a_single_segment_pattern() -> None:
    # The module docstring: only a pattern with no `/` matches the name at any depth (as in
    # .gitignore and rclone, where a leading `/` anchors the pattern to the root).
    g = Glob.compile("/build")
    assert g.match("build")
    assert not g.match("src/build")
    assert not g.prunes_dir("src/build")


# --- prunes_dir ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel_dir", "expected"),
    [
        (".thumbnails", True),
        ("a/.thumbnails", True),
        ("a/b/.thumbnails", True),
        ("thumbnails", False),
        ("a/.thumbnails2", False),
        ("a", False),
    ],
)
def test_prunes_dir_for_double_star_folder_pattern(rel_dir: str, expected: bool) -> None:
    assert Glob.compile("**/.thumbnails/**").prunes_dir(rel_dir) is expected


@pytest.mark.parametrize(
    ("rel_dir", "expected"),
    [(".git", True), ("a/.git", True), ("a/b/.git", True), ("a/.github", False), ("git", False)],
)
def test_prunes_dir_for_bare_name(rel_dir: str, expected: bool) -> None:
    assert Glob.compile(".git").prunes_dir(rel_dir) is expected


def test_prunes_dir_for_anchored_folder_pattern() -> None:
    g = Glob.compile("data/cache/**")
    assert g.prunes_dir("data/cache")
    assert not g.prunes_dir("data")
    assert not g.prunes_dir("x/data/cache")
    assert not g.prunes_dir("data/cachex")


def test_prunes_dir_for_top_level_folder_pattern() -> None:
    g = Glob.compile("cache/**")
    assert g.prunes_dir("cache")
    assert not g.prunes_dir("cachex")


def test_prunes_dir_agrees_with_match_for_single_segment_prefix() -> None:
    g = Glob.compile("cache/**")
    # `cache/**` has a `/`, so it is anchored: a/cache/x is not matched ...
    assert not g.match("a/cache/x")
    # ... so the folder a/cache must not be pruned, or a/cache/x is silently left out.
    assert not g.prunes_dir("a/cache")


def test_file_pattern_does_not_prune_unrelated_folders() -> None:
    g = Glob.compile("**/*.jpg")
    assert not g.prunes_dir("photos")
    assert not g.prunes_dir("a/b")


# --- split_pattern / has_glob -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/home/a/Videos/**/*.mp4", ("/home/a/Videos", "**/*.mp4")),
        ("/srv/*/logs/*.gz", ("/srv", "*/logs/*.gz")),
        ("/data/x?/y", ("/data", "x?/y")),
        ("/data/[ab]/y", ("/data", "[ab]/y")),
        ("/m/{a,b}.txt", ("/m", "{a,b}.txt")),
        ("/*.mp4", ("/", "*.mp4")),
        ("*.mp4", (".", "*.mp4")),
        ("rel/dir/*.mp4", ("rel/dir", "*.mp4")),
        ("/plain/path", ("/plain/path", "")),
    ],
)
def test_split_pattern(pattern: str, expected: tuple[str, str]) -> None:
    assert split_pattern(pattern) == expected


def test_has_glob() -> None:
    for text in ("*", "a?", "[x]", "{a,b}"):
        assert has_glob(text), text
    for text in ("plain/path.txt", "a]b", "a}b", "a,b", "a!b"):
        assert not has_glob(text), text


# --- bugs ---------------------------------------------------------------------------------


def test_negated_class_never_matches_slash() -> None:
    # `?` and `[...]` are translated to never match `/`; the negated class should not either.
    assert not matches("d/a[!x]b", "d/a/b")


def test_negated_class_with_leading_close_bracket() -> None:
    # `[]x]` is handled (a leading `]` is literal); `[!]x]` must be its negation.
    g = Glob.compile("d/[!]x].txt")
    assert g.match("d/a.txt")
    assert not g.match("d/].txt")
    assert not g.match("d/x.txt")


# --- property: an escaped literal matches exactly itself ----------------------------------

_NAME_CHARS = st.sampled_from(list("abcXYZ019 ._-+()!^$@#%&=~'\\") + list("*?[]{},") + ["é", "語"])
_names = st.text(_NAME_CHARS, min_size=1, max_size=20)


def escape_literal(name: str) -> str:
    """Escape every glob character (and spaces, which compile() strips) as a `[x]` class."""
    return "".join(f"[{c}]" if c in "*?[]{}, " else c for c in name)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@given(name=_names, other=_names)
def test_escaped_literal_matches_exactly_that_name(name: str, other: str) -> None:
    g = Glob.compile(escape_literal(name))
    assert g.match(name)
    assert g.match("some/dir/" + name)  # name-only: any depth
    if other != name:
        assert not g.match(other)
    assert not g.match(name + "a")
    assert not g.match("a" + name)
