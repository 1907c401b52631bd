"""Glob patterns with `**`, `*`, `?`, `[...]` and brace sets, compiled to regular expressions.

Patterns use `/` separators and match paths relative to a root. A pattern with no `/` matches
the file name at any depth (as in .gitignore and rclone filters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

GLOB_CHARS = frozenset("*?[{")


def has_glob(text: str) -> bool:
    return any(c in GLOB_CHARS for c in text)


def _translate(pat: str, i: int = 0, in_brace: bool = False) -> tuple[str, int]:
    out: list[str] = []
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if pat.startswith("**", i):
                at_seg_start = i == 0 or pat[i - 1] == "/"
                j = i + 2
                if at_seg_start and (j == n or pat[j] == "/"):
                    if j == n:
                        out.append(".*")
                        i = j
                    else:
                        out.append("(?:.*/)?")
                        i = j + 1
                    continue
                out.append("[^/]*")
                i = j
                continue
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            start = i + 1
            negate = start < n and pat[start] == "!"
            if negate:
                start += 1
            j = pat.find("]", start + 1 if start < n and pat[start] == "]" else start)
            if j < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = "".join("\\" + ch if ch in "\\[]^" else ch for ch in pat[start:j] if ch != "/")
            if not body:  # a class of nothing but "/" can never match inside a segment
                out.append("(?!)")
            else:
                out.append(("[^/" if negate else "[") + body + "]")
            i = j + 1
        elif c == "{":
            alts: list[str] = []
            i += 1
            while True:
                sub, i = _translate(pat, i, in_brace=True)
                alts.append(sub)
                if i >= n:
                    raise ValueError(f"unclosed '{{' in pattern {pat!r}")
                if pat[i] == "}":
                    i += 1
                    break
                i += 1  # the comma
            out.append("(?:" + "|".join(alts) + ")")
        elif in_brace and c in ",}":
            return "".join(out), i
        else:
            out.append(re.escape(c))
            i += 1
    if in_brace:
        raise ValueError(f"unclosed '{{' in pattern {pat!r}")
    return "".join(out), i


@dataclass(frozen=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]
    name_only: bool

    @classmethod
    def compile(cls, pattern: str, name_only: bool | None = None) -> Glob:
        """Compile a pattern; raise ValueError. Whitespace is significant. A leading `/`
        anchors the pattern at the root; without any `/` it matches names at any depth."""
        if name_only is None:
            name_only = "/" not in pattern
        body, _ = _translate(pattern.lstrip("/"))
        try:
            regex = re.compile(r"\A" + body + r"\Z", re.DOTALL)
        except re.error as exc:
            raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
        return cls(pattern, regex, name_only)

    def match(self, rel_path: str) -> bool:
        target = rel_path.rsplit("/", 1)[-1] if self.name_only else rel_path
        return self.regex.match(target) is not None

    def prunes_dir(self, rel_dir: str) -> bool:
        """True when every path under ``rel_dir`` matches (e.g. `**/.cache/**` or `.git`)."""
        if self.name_only:
            return self.match(rel_dir)
        if self.pattern.endswith("/**"):
            return Glob.compile(self.pattern[:-3], name_only=False).match(rel_dir)
        return self.regex.match(rel_dir) is not None


def compile_all(patterns: Iterable[str]) -> tuple[Glob, ...]:
    return tuple(Glob.compile(p) for p in patterns)


def split_pattern(pattern: str) -> tuple[str, str]:
    """Split `/home/a/Videos/**/*.mp4` into the literal root and the glob below it."""
    parts = pattern.split("/")
    for idx, part in enumerate(parts):
        if has_glob(part):
            root = "/".join(parts[:idx]) or ("/" if pattern.startswith("/") else ".")
            return root, "/".join(parts[idx:])
    return pattern, ""
