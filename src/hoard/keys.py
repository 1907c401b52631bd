"""Key templates: LocalFile → object key, and the validation every key we write must pass.

Template syntax is Python's `{name}` / `{name:spec}`; a date variable takes a strftime spec
(`{file_modified:%Y/%m}`), any other a format spec (`{file_size:010d}`). Empty path segments that
empty variables leave behind (`{base_dir}/{filename}` for a file at the base) are collapsed.
"""

from __future__ import annotations

import re
import string
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hoard.errors import InvalidKey, TemplateError
from hoard.model import LocalFile

MAX_KEY_BYTES = 1024
DATE_FMT = "%Y-%m-%d"
DATETIME_FMT = "%Y-%m-%d_%H-%M-%S"
GUID_NAMESPACE = uuid.UUID("0d6f6a7e-4f25-5b43-9c1e-5f0a8d2b6c11")


@dataclass(frozen=True)
class Context:
    """What a key may depend on besides the file: the job's start time and the content hash."""

    now: datetime
    hash_hex: str = ""


def _ts(ns: int) -> datetime:
    """Local time, truncated (not rounded) to the microsecond, as `ls` and `date` show it."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds).replace(microsecond=rest // 1000)


def _base_dir(f: LocalFile) -> str:
    parent = f.rel_path.rpartition("/")[0]
    if f.base_given:
        return parent
    return parent.rpartition("/")[2] or f.root.rstrip("/").rpartition("/")[2]


def _stem_ext(f: LocalFile) -> tuple[str, str]:
    name = f.rel_path.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, ext


Getter = Callable[[LocalFile, Context], object]

DATE_VARS: dict[str, tuple[Getter, str]] = {
    "date": (lambda f, c: c.now, DATE_FMT),
    "datetime": (lambda f, c: c.now, DATETIME_FMT),
    "file_created": (lambda f, c: _ts(f.created_ns), DATE_FMT),
    "file_created_datetime": (lambda f, c: _ts(f.created_ns), DATETIME_FMT),
    "file_modified": (lambda f, c: _ts(f.mtime_ns), DATE_FMT),
    "file_modified_datetime": (lambda f, c: _ts(f.mtime_ns), DATETIME_FMT),
    "file_accessed": (lambda f, c: _ts(f.atime_ns), DATE_FMT),
    "file_accessed_datetime": (lambda f, c: _ts(f.atime_ns), DATETIME_FMT),
}

OTHER_VARS: dict[str, Getter] = {
    "filename": lambda f, c: f.rel_path.rpartition("/")[2],
    "filename_no_ext": lambda f, c: _stem_ext(f)[0],
    "file_ext": lambda f, c: _stem_ext(f)[1],
    "file_size": lambda f, c: f.size,
    "file_size_mb": lambda f, c: f"{f.size / 1_048_576:.2f}",
    "base_dir": lambda f, c: _base_dir(f),
    "base_dir_underscore": lambda f, c: _base_dir(f).replace("/", "_"),
    "rel_path": lambda f, c: f.rel_path,
    "hash": lambda f, c: c.hash_hex,
    "guid": lambda f, c: str(uuid.uuid5(GUID_NAMESPACE, f.path)),
}

VARIABLES: tuple[str, ...] = (*DATE_VARS, *OTHER_VARS)
DEFAULT_TEMPLATE = "{rel_path}"


@dataclass(frozen=True)
class _Piece:
    literal: str
    name: str | None
    spec: str


@dataclass(frozen=True)
class Template:
    text: str
    pieces: tuple[_Piece, ...]

    @property
    def needs_hash(self) -> bool:
        return any(p.name == "hash" for p in self.pieces)

    @classmethod
    def compile(cls, text: str) -> Template:
        """Parse and check a template; raise TemplateError before anything moves."""
        if not text.strip():
            raise TemplateError("the key template is empty")
        if text.startswith("/"):
            raise TemplateError(f"template {text!r} starts with '/': keys are relative")
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"template {text!r} is malformed: {exc}") from None
        pieces = []
        for literal, name, spec, conv in parsed:
            if name is None:
                pieces.append(_Piece(literal, None, ""))
                continue
            if conv is not None:
                raise TemplateError(
                    f"template {text!r}: conversions like '!{conv}' are not supported"
                )
            if name == "" or name not in VARIABLES:
                known = ", ".join(VARIABLES)
                raise TemplateError(
                    f"template {text!r}: unknown variable {{{name}}}; known: {known}"
                )
            if "{" in (spec or ""):
                raise TemplateError(f"template {text!r}: nested fields are not supported")
            piece = _Piece(literal, name, spec or "")
            _render_piece(piece, _SAMPLE, Context(datetime(2025, 12, 24, 8, 24, 2), "0" * 64), text)
            pieces.append(piece)
        return cls(text, tuple(pieces))

    @property
    def only_rel_path(self) -> bool:
        """The template is `{rel_path}` alone: a key needs no LocalFile (``render_rel``)."""
        return self.pieces == (_Piece("", "rel_path", ""),)

    def render_rel(self, rel_path: str, origin: str) -> str:
        """``render`` for an ``only_rel_path`` template, from the relative path alone."""
        if "//" in rel_path or rel_path.startswith("/") or rel_path.endswith("/"):
            rel_path = "/".join(seg for seg in rel_path.split("/") if seg)
        return validate_key(rel_path, origin=origin)

    def render(self, f: LocalFile, ctx: Context) -> str:
        """The key for ``f``, validated and NFC-normalised; raise InvalidKey."""
        out = [_render_piece(p, f, ctx, self.text) for p in self.pieces]
        raw = "".join(out)
        return validate_key("/".join(seg for seg in raw.split("/") if seg), origin=f.path)


def _render_piece(p: _Piece, f: LocalFile, ctx: Context, text: str) -> str:
    if p.name is None:
        return p.literal
    try:
        if p.name in DATE_VARS:
            getter, default = DATE_VARS[p.name]
            value = getter(f, ctx)
            assert isinstance(value, datetime)
            return p.literal + value.strftime(p.spec or default)
        return p.literal + format(OTHER_VARS[p.name](f, ctx), p.spec)
    except (ValueError, TypeError) as exc:
        raise TemplateError(
            f"template {text!r}: {{{p.name}:{p.spec}}} cannot be formatted: {exc}"
        ) from None


_SAMPLE = LocalFile(
    path="/sample/dir/photo.jpg",
    root="/sample",
    rel_path="dir/photo.jpg",
    size=1,
    mtime_ns=0,
    ctime_ns=0,
    atime_ns=0,
    birthtime_ns=None,
    inode=1,
    dev=1,
)


#: The first control character (C0, DEL or C1) of a key, as validate_key rejects them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: A '', '.' or '..' segment: at the start, between two '/', or at the end.
_BAD_SEGMENT = re.compile(r"(?:^|/)(\.{0,2})(?:/|$)")


def validate_key(key: str, origin: str = "") -> str:
    """Return the NFC form of ``key`` or raise InvalidKey saying why it is unsafe."""
    if (  # the common case, in C: a printable ASCII key with no '', '.' or '..' segment
        key.isascii()
        and key.isprintable()
        and 0 < len(key) <= MAX_KEY_BYTES
        and key[0] != "/"
        and key[0] != "."
        and key[-1] != "/"
        and "//" not in key
        and "/." not in key
    ):
        return key
    try:
        nfc = unicodedata.normalize("NFC", key) if not key.isascii() else key
        size = len(nfc.encode("utf-8"))
    except UnicodeError:
        raise InvalidKey(
            f"key {key!r}{_where(origin)} is not valid UTF-8 (a file name with undecodable bytes?)"
        ) from None
    if not nfc:
        raise InvalidKey(f"empty key{_where(origin)}")
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            f"key {nfc[:60]!r}…{_where(origin)} is {size} UTF-8 bytes; the limit is {MAX_KEY_BYTES}"
        )
    if nfc[0] == "/":
        raise InvalidKey(f"key {nfc!r}{_where(origin)} starts with '/'")
    control = _CONTROL.search(nfc)
    if control is not None:
        code = ord(control.group())
        raise InvalidKey(f"key {nfc!r}{_where(origin)} contains the control character U+{code:04X}")
    bad = _BAD_SEGMENT.search(nfc)
    if bad is not None:
        seg = bad.group(1)
        raise InvalidKey(f"key {nfc!r}{_where(origin)} has a {seg or 'empty'!r} path segment")
    return nfc


def _where(origin: str) -> str:
    return f" (from {origin})" if origin else ""


def join_key(prefix: str, key: str) -> str:
    return f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key
