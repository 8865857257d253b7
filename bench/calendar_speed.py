"""How many business-minute additions and measurements per second (issue: >= 100,000/s).

.venv/bin/python bench/calendar_speed.py
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from servicecycle.sla.calendar import BusinessCalendar, Shift, public_holidays


def main() -> None:
    calendar = BusinessCalendar(
        zone="Europe/London",
        week={day: [Shift.of("09:00", "17:00")] for day in range(5)},
        holiday_source=public_holidays("GB", "ENG"),
    )
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    instants = [base + timedelta(minutes=rng.randrange(0, 60 * 24 * 365)) for _ in range(100_000)]
    amounts = [rng.choice((30, 60, 240, 480, 960, 2400)) for _ in range(100_000)]
    calendar.add_minutes(base, 1)  # build the timeline once, as a long-running process would
    for name, call in (
        ("add_minutes", lambda t, m: calendar.add_minutes(t, m)),
        ("minutes_between", lambda t, m: calendar.minutes_between(t, t + timedelta(minutes=m))),
    ):
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            for instant, amount in zip(instants, amounts, strict=True):
                call(instant, amount)
            best = max(best, len(instants) / (time.perf_counter() - started))
        print(f"{name:16} {best:12,.0f} calls/s (best of 3 runs of 100,000)")


if __name__ == "__main__":
    main()
