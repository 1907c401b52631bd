"""Cron schedules: the next slot, missed runs, and the two DST nights of 2026 in New York
(clocks jump 02:00 → 03:00 on March 8 and fall back 02:00 → 01:00 on November 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hoard.schedule import Schedule, to_datetime, to_ns, zone_named
from hoard.workflows import overdue

NY = ZoneInfo("America/New_York")


def slots(expression: str, start: datetime, count: int, zone: ZoneInfo = NY) -> list[str]:
    """The next ``count`` slots after ``start``, as local wall time with the UTC offset."""
    schedule = Schedule.parse(expression, zone)
    ns, out = to_ns(start), []
    for _ in range(count):
        ns = schedule.next_after(ns)
        out.append(to_datetime(ns, zone).strftime("%m-%d %H:%M%z"))
    return out


def test_next_slot_is_strictly_after_the_given_instant() -> None:
    assert slots("0 2 * * *", datetime(2026, 6, 1, 1, 59, tzinfo=NY), 2) == [
        "06-01 02:00-0400", "06-02 02:00-0400"]
    assert slots("0 2 * * *", datetime(2026, 6, 1, 2, 0, tzinfo=NY), 1) == ["06-02 02:00-0400"]
    assert slots("*/15 9-10 * * mon-fri", datetime(2026, 6, 5, 10, 40, tzinfo=NY), 3) == [
        "06-05 10:45-0400", "06-08 09:00-0400", "06-08 09:15-0400"]  # Friday, then Monday
    assert slots("@weekly", datetime(2026, 6, 3, tzinfo=NY), 1) == ["06-07 00:00-0400"]


def test_spring_forward_a_slot_in_the_skipped_hour_runs_once_right_after_the_jump() -> None:
    assert slots("30 2 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=NY), 3) == [
        "03-08 03:00-0400", "03-09 02:30-0400", "03-10 02:30-0400"]
    # four slots inside the missing hour collapse into one run at 03:00
    assert slots("*/15 2 * * *", datetime(2026, 3, 8, 1, 50, tzinfo=NY), 2) == [
        "03-08 03:00-0400", "03-09 02:00-0400"]
    # a slot after the gap is not moved; the hours around it keep their meaning
    assert slots("0 3 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=NY), 2) == [
        "03-08 03:00-0400", "03-09 03:00-0400"]
    assert slots("0 1 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=NY), 2) == [
        "03-08 01:00-0500", "03-09 01:00-0400"]


def test_fall_back_a_daily_slot_in_the_repeated_hour_runs_once() -> None:
    assert slots("30 1 * * *", datetime(2026, 10, 31, 12, 0, tzinfo=NY), 3) == [
        "11-01 01:30-0400", "11-02 01:30-0500", "11-03 01:30-0500"]
    assert slots("*/30 1 * * *", datetime(2026, 11, 1, 0, 45, tzinfo=NY), 3) == [
        "11-01 01:00-0400", "11-01 01:30-0400", "11-02 01:00-0500"]
    # from inside the repeated hour (second pass), the next run is tomorrow
    second_pass = datetime(2026, 11, 1, 1, 45, fold=1, tzinfo=NY)
    assert slots("30 1 * * *", second_pass, 1) == ["11-02 01:30-0500"]


def test_fall_back_an_hourly_schedule_runs_in_both_real_hours() -> None:
    assert slots("0 * * * *", datetime(2026, 11, 1, 0, 30, tzinfo=NY), 4) == [
        "11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500", "11-01 03:00-0500"]


def test_daily_slots_keep_their_wall_time_across_both_changes_in_real_hours() -> None:
    schedule = Schedule.parse("0 2 * * *", NY)
    before_spring = to_ns(datetime(2026, 3, 7, 2, 0, tzinfo=NY))
    after_spring = schedule.next_after(before_spring)
    # 02:00 does not exist on March 8: 03:00 EDT, the first minute after the jump, is the
    # same instant 02:00 EST would have been, 24 real hours later; the next night is 23 away
    assert (after_spring - before_spring) / 3.6e12 == 24
    assert to_datetime(after_spring, NY).strftime("%H:%M%z") == "03:00-0400"
    next_day = schedule.next_after(after_spring)
    assert (next_day - after_spring) / 3.6e12 == 23
    before_fall = to_ns(datetime(2026, 10, 31, 2, 0, tzinfo=NY))
    assert (schedule.next_after(before_fall) - before_fall) / 3.6e12 == 25


def test_a_missed_run_is_one_run_not_one_per_missed_slot() -> None:
    schedule = Schedule.parse("0 2 * * *", NY)
    last_run = to_ns(datetime(2026, 3, 1, 2, 0, 5, tzinfo=NY))
    back_on = to_ns(datetime(2026, 3, 10, 9, 0, tzinfo=NY))  # nine nights off
    assert overdue(schedule, last_run, back_on)
    assert not overdue(schedule, last_run, to_ns(datetime(2026, 3, 2, 1, 59, tzinfo=NY)))
    assert overdue(schedule, last_run, to_ns(datetime(2026, 3, 2, 2, 0, tzinfo=NY)))
    assert not overdue(schedule, None, back_on)  # never ran: not missed, just not yet due
    # the missed-run check sees the DST night too: the run due at 03:00 EDT on March 8
    before = to_ns(datetime(2026, 3, 7, 2, 0, 5, tzinfo=NY))
    assert not overdue(schedule, before, to_ns(datetime(2026, 3, 8, 1, 59, tzinfo=NY)))
    assert overdue(schedule, before, to_ns(datetime(2026, 3, 8, 3, 0, tzinfo=NY)))


def test_the_zone_decides_which_instant_is_2am() -> None:
    tokyo = zone_named("Asia/Tokyo")
    start = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    ny_slot = Schedule.parse("0 2 * * *", NY).next_after(to_ns(start))
    tokyo_slot = Schedule.parse("0 2 * * *", tokyo).next_after(to_ns(start))
    assert to_datetime(ny_slot, UTC).strftime("%d %H:%M") == "01 06:00"
    assert to_datetime(tokyo_slot, UTC).strftime("%d %H:%M") == "01 17:00"


@pytest.mark.parametrize(("expression", "message"), [
    ("0 2 * *", "5 fields"),
    ("0 2 * * * 2026", "5 fields"),
    ("60 2 * * *", "not a valid cron schedule"),
    ("0 2 32 * *", "not a valid cron schedule"),
    ("0 2 * foo *", "not a valid cron schedule"),
    ("@reboot", "unknown schedule macro"),
    ("", "5 fields"),
])
def test_a_bad_schedule_says_what_is_expected(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(expression, NY)
