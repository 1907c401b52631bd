"""Cron schedules in a time zone: when is a workflow next due?

Five fields (minute hour day-of-month month day-of-week, with names, ranges, lists and steps) or
a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). Instants are nanoseconds since
the epoch, as every clock in hoard gives them; the caller supplies them, this module never reads
the time.

Daylight saving time follows the wall clock, as cron does:

- a slot that does not exist (02:30 on the night clocks jump from 02:00 to 03:00) runs once, at
  the first minute after the jump (03:00); several such slots collapse into that one run;
- a slot that exists twice (01:30 on the night clocks fall back) runs once, at its first
  occurrence — unless the hour field is `*`, where every real hour is meant and both run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
NS = 1_000_000_000


def to_datetime(ns: int, zone: tzinfo) -> datetime:
    seconds, rest = divmod(ns, NS)
    return datetime.fromtimestamp(seconds, zone).replace(microsecond=rest // 1000)


def to_ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def zone_named(name: str | None) -> tzinfo:
    """An IANA zone (`Europe/Berlin`), or the machine's own zone for None; ValueError."""
    if name is None:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected a name like Europe/Berlin)"
        ) from None


def local_zone() -> tzinfo:
    """The machine's zone with its DST rules: $TZ, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: tzinfo

    @classmethod
    def parse(cls, expression: str, zone: tzinfo) -> Schedule:
        """Raise ValueError with what is expected when ``expression`` is not a valid schedule."""
        text = " ".join(expression.split())
        fields = MACROS.get(text.lower(), text)
        if text.startswith("@") and text.lower() not in MACROS:
            raise ValueError(
                f"unknown schedule macro {text!r} (expected one of {', '.join(MACROS)})"
            )
        if len(fields.split()) != 5:
            raise ValueError(
                f"a cron schedule has 5 fields (minute hour day month weekday), "
                f"like '0 2 * * *'; got {len(fields.split())} in {expression!r}"
            )
        if not croniter.is_valid(fields):
            raise ValueError(
                f"{expression!r} is not a valid cron schedule (minute 0-59, hour 0-23, "
                "day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat; `*`, `,`, `-`, `/`)"
            )
        return cls(fields, zone)

    @property
    def every_hour(self) -> bool:
        return self.expression.split()[1] == "*"

    def next_after(self, ns: int) -> int:
        """The first due instant strictly after ``ns``."""
        start = to_datetime(ns, self.zone)
        it = croniter(self.expression, start)
        while True:
            due: datetime = it.get_next(datetime)
            if due.fold == 1 and not self.every_hour and _repeats(due):
                continue  # the second pass through a fall-back hour: already ran at the first
            due_ns = to_ns(due)
            if due_ns > ns:
                return due_ns

    def due_between(self, after_ns: int, until_ns: int) -> bool:
        """Whether a slot fell in (after_ns, until_ns]: a run was missed."""
        return self.next_after(after_ns) <= until_ns


def _repeats(dt: datetime) -> bool:
    """True when the wall time ``dt`` (fold=1) also happened earlier, at fold=0."""
    return dt.replace(fold=0).utcoffset() != dt.utcoffset()
