"""The first-contact promise states the ticket's real first-reply target, in the calendar's
time zone, computed exactly as the SLA clock is (checked by hand and against the clock)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.models import OutboundMail
from servicecycle.channels.subscribers import spoken_time
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.sla.models import SlaClock

Sessions = async_sessionmaker[AsyncSession]
WORKDAYS = {str(day): [["09:00", "17:00"]] for day in range(5)}


@pytest.fixture
def frozen() -> Iterator[Callable[[datetime], None]]:
    def freeze(at: datetime) -> None:
        clock.set_source(lambda: at)

    yield freeze
    clock.set_source(None)


async def policy(
    sessions: Sessions, *, zone: str | None, minutes: int, business: bool, **conditions: Any
) -> None:
    async with sessions() as session, session.begin():
        calendar_id = None
        if zone is not None:
            calendar = await sla.create_calendar(
                session,
                name=f"Hours {zone}",
                zone=zone,
                week=WORKDAYS,
                holiday_country=None,
                holiday_region=None,
                closed_days=[],
                actor=Actor.system("test"),
            )
            calendar_id = calendar.id
        await sla.create_policy(
            session,
            name=f"Policy {zone} {minutes}",
            conditions={key: [value] for key, value in conditions.items()},
            targets={"first_reply": {"minutes": minutes, "business": business}},
            calendar_id=calendar_id,
            pause_statuses=["pending", "on-hold"],
            warn_minutes=30,
            actor=Actor.system("test"),
        )


async def acknowledgement(db: AsyncSession, ticket_id: int) -> str:
    row = (
        await db.scalars(
            select(OutboundMail).where(
                OutboundMail.ticket_id == ticket_id, OutboundMail.kind == "acknowledgement"
            )
        )
    ).one()
    return row.body_text


async def test_business_hours_in_london(
    sessions: Sessions,
    db: AsyncSession,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Callable[[datetime], None],
) -> None:
    await policy(sessions, zone="Europe/London", minutes=240, business=True)
    # Monday 2 December 2024, 14:00 in London (GMT): 3 working hours left that day, the
    # fourth is Tuesday 09:00-10:00
    frozen(datetime(2024, 12, 2, 14, 0, tzinfo=UTC))
    ticket = await make_ticket("Parcel missing")
    body = await acknowledgement(db, ticket.id)
    assert "We will reply by Tuesday 3 December, 10:00 (London time)." in body
    first = (
        await db.scalars(
            select(SlaClock).where(
                SlaClock.ticket_id == ticket.id, SlaClock.metric == "first_reply"
            )
        )
    ).one()
    assert first.due_at == datetime(2024, 12, 3, 10, 0, tzinfo=UTC)  # the clock agrees
    queued = (
        await db.scalars(
            select(Event).where(Event.kind == "mail.queued", Event.subject_id == str(ticket.id))
        )
    ).one()
    assert queued.data["due_at"] == "2024-12-03T10:00:00+00:00"


async def test_over_a_weekend_in_new_york_for_the_matching_policy(
    sessions: Sessions,
    db: AsyncSession,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Callable[[datetime], None],
) -> None:
    await policy(sessions, zone="Europe/London", minutes=60, business=True, priority="urgent")
    await policy(sessions, zone="America/New_York", minutes=240, business=True)
    # Friday 6 December 2024, 15:00 in New York (EST, UTC-5): 2 hours on Friday, 2 on Monday
    frozen(datetime(2024, 12, 6, 20, 0, tzinfo=UTC))
    ticket = await make_ticket("Refund")
    assert "We will reply by Monday 9 December, 11:00 (New York time)." in (
        await acknowledgement(db, ticket.id)
    )


async def test_calendar_minutes_in_the_desk_zone_name_the_year_when_it_changes(
    sessions: Sessions,
    db: AsyncSession,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Callable[[datetime], None],
) -> None:
    await policy(sessions, zone=None, minutes=90, business=False)
    frozen(datetime(2024, 12, 31, 23, 30, tzinfo=UTC))
    ticket = await make_ticket("Happy new year")
    assert "We will reply by Wednesday 1 January 2025, 01:00 (UTC)." in (
        await acknowledgement(db, ticket.id)
    )


async def test_without_a_policy_the_channel_default_is_promised(
    db: AsyncSession, make_ticket: Callable[..., Awaitable[Any]]
) -> None:
    ticket = await make_ticket("No standards here")
    assert "We will reply within one business day." in await acknowledgement(db, ticket.id)


def test_spoken_time_handles_summer_time_and_unknown_zones() -> None:
    due = datetime(2025, 7, 1, 8, 30, tzinfo=UTC)
    now = datetime(2025, 6, 30, tzinfo=UTC)
    assert spoken_time(due, "Europe/London", now=now) == "Tuesday 1 July, 09:30 (London time)"
    assert spoken_time(due, "Not/AZone", now=now) == "Tuesday 1 July, 08:30 (UTC)"
