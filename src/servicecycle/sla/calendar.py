"""Business time: weekly hours in a time zone, minus holidays. Pure (no database, no web).

A calendar turns into a sorted list of working intervals in UTC (built lazily, a year at
a time) with a running total of working seconds, so adding business minutes and measuring
business minutes between two instants are a binary search and some arithmetic.

Conventions:
* a shift belongs to the day it starts: 22:00-06:00 on a Friday that is a holiday is off,
  the Thursday night shift that ends on the holiday's morning is on;
* wall-clock hours are converted with the zone's rules, so an overnight shift across a DST
  change lasts 7 or 9 real hours, and business time counts real elapsed time;
* adding zero minutes returns the instant itself; a result that lands exactly at the end of a
  shift is that end (17:00), not the next shift's start.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
_YEAR_SPAN = 2  # years to look ahead for the next working minute before giving up


class CalendarError(ValueError):
    """A calendar that cannot be used (no working time, bad hours)."""


@dataclass(frozen=True)
class Shift:
    """Working time on one weekday, in minutes after local midnight; ``end`` may pass
    midnight (up to 48 h) for a shift that runs into the next day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if (
            not 0 <= self.start < MINUTES_PER_DAY
            or not self.start < self.end <= 2 * MINUTES_PER_DAY
        ):
            raise CalendarError(f"invalid shift {self.start}-{self.end} (minutes after midnight)")

    @classmethod
    def of(cls, start: str, end: str) -> Shift:
        """From "HH:MM" strings; an end at or before the start runs past midnight
        ("22:00"-"06:00"), and "00:00"-"24:00" is the whole day."""
        first, last = _minutes(start), _minutes(end)
        if last <= first:
            last += MINUTES_PER_DAY
        return cls(first, last)


def _minutes(value: str) -> int:
    hours, _, minutes = value.partition(":")
    if not hours.isdigit() or not minutes.isdigit() or int(minutes) > 59 or int(hours) > 24:
        raise CalendarError(f"invalid time {value!r} (expected HH:MM)")
    total = int(hours) * 60 + int(minutes)
    if total > MINUTES_PER_DAY:
        raise CalendarError(f"invalid time {value!r}")
    return total


HolidaySource = Callable[[int], Iterable[date]]


@dataclass
class BusinessCalendar:
    """Weekly shifts (Monday = 0) in ``zone``, closed on holidays."""

    zone: str
    week: dict[int, list[Shift]]
    holidays: frozenset[date] = frozenset()
    holiday_source: HolidaySource | None = None
    _tz: ZoneInfo = field(init=False, repr=False)
    _starts: list[float] = field(init=False, repr=False, default_factory=list)
    _ends: list[float] = field(init=False, repr=False, default_factory=list)
    _cum: list[float] = field(init=False, repr=False, default_factory=list)
    _first: date | None = field(init=False, repr=False, default=None)
    _last: date | None = field(init=False, repr=False, default=None)
    _closed: set[date] = field(init=False, repr=False, default_factory=set)
    _years: set[int] = field(init=False, repr=False, default_factory=set)
    _safe_from: float = field(init=False, repr=False, default=0.0)
    _safe_to: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        try:
            self._tz = ZoneInfo(self.zone)
        except Exception as exc:
            raise CalendarError(f"unknown time zone {self.zone!r}") from exc
        if set(self.week) - set(range(7)):
            raise CalendarError("weekdays are 0 (Monday) to 6 (Sunday)")
        if not any(self.week.values()):
            raise CalendarError("a calendar needs some working hours")
        self._closed = set(self.holidays)

    # -- the public operations -------------------------------------------------------------

    def add_minutes(self, instant: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` of working time after ``instant`` (before, if negative)."""
        if minutes == 0:
            return instant
        moment = _ts(instant)
        self._cover(moment)
        target = self._position(moment) + minutes * 60
        while target > self._cum[-1] + (self._ends[-1] - self._starts[-1]):
            self._extend_forward()
        while target < 0 or (minutes < 0 and target <= 0):
            target = self._extend_backward(target)
        index = bisect.bisect_left(self._cum, target) - 1
        index = max(index, 0)
        return datetime.fromtimestamp(self._starts[index] + (target - self._cum[index]), tz=UTC)

    def minutes_between(self, start: datetime, end: datetime) -> float:
        """Working minutes from ``start`` to ``end`` (negative if ``end`` is earlier)."""
        first, last = _ts(start), _ts(end)
        self._cover(first)
        self._cover(last)
        return (self._position(last) - self._position(first)) / 60

    def is_open(self, instant: datetime) -> bool:
        moment = _ts(instant)
        self._cover(moment)
        index = bisect.bisect_right(self._starts, moment) - 1
        return index >= 0 and moment < self._ends[index]

    # -- the timeline ----------------------------------------------------------------------

    def _position(self, moment: float) -> float:
        """Working seconds from the start of the built range up to ``moment``."""
        index = bisect.bisect_right(self._starts, moment) - 1
        if index < 0:
            return 0.0
        return self._cum[index] + min(moment, self._ends[index]) - self._starts[index]

    def _cover(self, moment: float) -> None:
        if self._safe_from < moment < self._safe_to:  # the common case, without date maths
            return
        day = datetime.fromtimestamp(moment, tz=self._tz).date()
        if self._first is None:
            self._build(day - timedelta(days=7), day + timedelta(days=366))
        while self._last is not None and day >= self._last - timedelta(days=2):
            self._extend_forward()
        while self._first is not None and day <= self._first + timedelta(days=2):
            self._extend_backward(None)

    def _extend_forward(self) -> None:
        assert self._first is not None and self._last is not None
        if (self._last - self._first).days > 366 * 60:
            raise CalendarError("no working time within the calendar's range")
        self._build(self._first, self._last + timedelta(days=366))

    def _extend_backward(self, target: float | None) -> float:
        assert self._first is not None and self._last is not None
        if (self._last - self._first).days > 366 * 60:
            raise CalendarError("no working time within the calendar's range")
        before = self._cum[-1] + (self._ends[-1] - self._starts[-1]) if self._starts else 0.0
        self._build(self._first - timedelta(days=366), self._last)
        after = self._cum[-1] + (self._ends[-1] - self._starts[-1]) if self._starts else 0.0
        # positions moved by the working time added in front
        return (target or 0.0) + (after - before)

    def _build(self, first: date, last: date) -> None:
        self._load_holidays(first.year, last.year)
        starts: list[float] = []
        ends: list[float] = []
        day = first
        while day < last:
            if day not in self._closed:
                for shift in self.week.get(day.weekday(), ()):
                    start = self._local(day, shift.start)
                    end = self._local(day, shift.end)
                    if end > start:
                        if ends and start <= ends[-1]:
                            ends[-1] = max(ends[-1], end)
                        else:
                            starts.append(start)
                            ends.append(end)
            day += timedelta(days=1)
        cum: list[float] = []
        total = 0.0
        for start, end in zip(starts, ends, strict=True):
            cum.append(total)
            total += end - start
        if not starts:
            starts, ends, cum = [], [], []
        self._starts, self._ends, self._cum = starts, ends, cum
        self._first, self._last = first, last
        # instants this far inside the range need no extension (three days of margin)
        self._safe_from = self._local(first, 0) + 3 * 86400
        self._safe_to = self._local(last, 0) - 3 * 86400
        if not self._starts:
            raise CalendarError("no working time within the calendar's range")

    def _local(self, day: date, minutes: int) -> float:
        extra_days, minute_of_day = divmod(minutes, MINUTES_PER_DAY)
        local = datetime.combine(day + timedelta(days=extra_days), time(), tzinfo=self._tz)
        local = local.replace(hour=minute_of_day // 60, minute=minute_of_day % 60)
        return local.timestamp()

    def _load_holidays(self, first_year: int, last_year: int) -> None:
        if self.holiday_source is None:
            return
        for year in range(first_year, last_year + 1):
            if year not in self._years:
                self._years.add(year)
                self._closed.update(self.holiday_source(year))


def _ts(instant: datetime) -> float:
    if instant.tzinfo is None:
        raise CalendarError("instants must be timezone-aware")
    return instant.timestamp()


def public_holidays(country: str, subdivision: str | None = None) -> HolidaySource:
    """A holiday source from the ``holidays`` package (e.g. "GB", "ENG")."""
    import holidays

    try:
        holidays.country_holidays(country, subdiv=subdivision, years=2026)
    except NotImplementedError as exc:
        raise CalendarError(f"no public holidays known for {country!r}") from exc
    except Exception as exc:  # the package raises plain errors for bad subdivisions
        raise CalendarError(f"unknown region {subdivision!r} of {country!r}") from exc

    def source(year: int) -> Iterable[date]:
        return holidays.country_holidays(country, subdiv=subdivision, years=year).keys()

    return source
