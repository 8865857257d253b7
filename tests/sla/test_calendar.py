"""Business calendar maths against hand-computed values, and its invariants (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicecycle.sla.calendar import BusinessCalendar, CalendarError, Shift, public_holidays

LONDON = ZoneInfo("Europe/London")
OFFICE = {day: [Shift.of("09:00", "17:00")] for day in range(5)}  # Mon-Fri 9-17


def at(text: str, zone: ZoneInfo = LONDON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def office(**extra: object) -> BusinessCalendar:
    return BusinessCalendar(zone="Europe/London", week=OFFICE, **extra)  # type: ignore[arg-type]


def test_adding_within_a_day_and_across_a_weekend() -> None:
    cal = office()
    assert cal.add_minutes(at("2026-03-02 10:00"), 120) == at("2026-03-02 12:00")
    # Friday 16:00 + 4 h -> 1 h on Friday, 3 h on Monday
    assert cal.add_minutes(at("2026-03-06 16:00"), 240) == at("2026-03-09 12:00")
    # Saturday counts from Monday's opening
    assert cal.add_minutes(at("2026-03-07 11:00"), 30) == at("2026-03-09 09:30")
    # landing exactly on closing time is closing time
    assert cal.add_minutes(at("2026-03-02 09:00"), 480) == at("2026-03-02 17:00")
    assert cal.add_minutes(at("2026-03-02 12:00"), 0) == at("2026-03-02 12:00")


def test_subtracting_goes_back_in_working_time() -> None:
    cal = office()
    assert cal.add_minutes(at("2026-03-09 10:00"), -120) == at("2026-03-06 16:00")
    assert cal.add_minutes(at("2026-03-09 09:00"), -60) == at("2026-03-06 16:00")


def test_minutes_between() -> None:
    cal = office()
    assert cal.minutes_between(at("2026-03-06 16:00"), at("2026-03-09 10:00")) == 120
    assert cal.minutes_between(at("2026-03-07 08:00"), at("2026-03-08 20:00")) == 0
    assert cal.minutes_between(at("2026-03-09 10:00"), at("2026-03-06 16:00")) == -120


def test_public_holidays_are_closed() -> None:
    cal = office(holiday_source=public_holidays("GB", "ENG"))
    # Good Friday 2026-04-03 and Easter Monday 2026-04-06 are bank holidays in England
    assert cal.add_minutes(at("2026-04-02 16:00"), 120) == at("2026-04-07 10:00")
    assert not cal.is_open(at("2026-04-03 10:00"))
    custom = office(holidays=frozenset({date(2026, 3, 3)}))
    assert custom.add_minutes(at("2026-03-02 16:30"), 60) == at("2026-03-04 09:30")


def test_dst_changes_count_real_time() -> None:
    # UK clocks go forward at 01:00 UTC on 2026-03-29 (Sunday) and back on 2026-10-25
    night = BusinessCalendar(
        zone="Europe/London", week={d: [Shift.of("22:00", "06:00")] for d in range(7)}
    )
    # Saturday 22:00 -> Sunday 06:00 local is only 7 real hours
    assert night.minutes_between(at("2026-03-28 21:00"), at("2026-03-29 12:00")) == 7 * 60
    assert night.minutes_between(at("2026-10-24 21:00"), at("2026-10-25 12:00")) == 9 * 60
    nine_to_five = office()
    assert nine_to_five.add_minutes(at("2026-03-27 16:00"), 120) == at("2026-03-30 10:00")
    assert at("2026-03-30 10:00").utcoffset() == timedelta(hours=1)


def test_round_the_clock_and_overnight_shifts() -> None:
    always = BusinessCalendar(zone="UTC", week={d: [Shift.of("00:00", "24:00")] for d in range(7)})
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert always.add_minutes(start, 60 * 24 * 3) == start + timedelta(days=3)
    night = BusinessCalendar(
        zone="UTC", week={4: [Shift.of("22:00", "06:00")]}
    )  # Friday night only
    friday = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)
    assert night.add_minutes(friday, 60) == datetime(2026, 3, 7, 0, 0, tzinfo=UTC)
    assert night.add_minutes(friday, 7 * 60) == datetime(2026, 3, 7, 6, 0, tzinfo=UTC)
    assert night.add_minutes(friday, 8 * 60) == datetime(2026, 3, 13, 23, 0, tzinfo=UTC)


def test_unusable_calendars_are_refused() -> None:
    with pytest.raises(CalendarError, match="working hours"):
        BusinessCalendar(zone="UTC", week={})
    with pytest.raises(CalendarError, match="time zone"):
        BusinessCalendar(zone="Mars/Olympus", week=OFFICE)
    with pytest.raises(CalendarError):
        Shift.of("25:00", "26:00")
    with pytest.raises(CalendarError):
        public_holidays("XX")
    with pytest.raises(CalendarError, match="timezone-aware"):
        office().add_minutes(datetime(2026, 1, 1), 5)


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
amounts = st.integers(min_value=0, max_value=60 * 24 * 40)
CALENDARS = [
    office(holiday_source=public_holidays("GB", "ENG")),
    BusinessCalendar(
        zone="America/New_York",
        week={d: [Shift.of("08:00", "12:00"), Shift.of("13:00", "20:00")] for d in range(6)},
    ),
    BusinessCalendar(
        zone="Australia/Sydney", week={d: [Shift.of("20:00", "04:00")] for d in (0, 2, 4)}
    ),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CALENDARS), instants, amounts)
def test_adding_then_measuring_gives_back_the_minutes(
    cal: BusinessCalendar, start: datetime, minutes: int
) -> None:
    due = cal.add_minutes(start, minutes)
    assert due >= start
    assert cal.minutes_between(start, due) == pytest.approx(minutes, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CALENDARS), instants, amounts, amounts)
def test_adding_is_additive(
    cal: BusinessCalendar, start: datetime, first: int, second: int
) -> None:
    once = cal.add_minutes(start, first + second)
    twice = cal.add_minutes(cal.add_minutes(start, first), second)
    assert abs((once - twice).total_seconds()) < 1e-3 or (first + second == 0)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CALENDARS), instants, instants, amounts)
def test_adding_is_monotone(cal: BusinessCalendar, a: datetime, b: datetime, minutes: int) -> None:
    early, late = sorted((a, b))
    assert cal.add_minutes(early, minutes) <= cal.add_minutes(late, minutes) or minutes == 0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CALENDARS), instants, instants, instants)
def test_between_is_additive(cal: BusinessCalendar, a: datetime, b: datetime, c: datetime) -> None:
    total = cal.minutes_between(a, c)
    assert cal.minutes_between(a, b) + cal.minutes_between(b, c) == pytest.approx(total, abs=1e-6)
