"""A ticket walked through replies, pauses, a weekend and Easter, with a frozen clock; every
due time checked to the minute against hand-computed values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.tickets import service as tickets

LONDON = ZoneInfo("Europe/London")
AGENT = Actor.user(1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


class Clock:
    def __init__(self) -> None:
        self.now = at("2026-04-02 15:00")

    def set(self, text: str) -> None:
        self.now = at(text)


@pytest.fixture
def frozen() -> Iterator[Clock]:
    moment = Clock()
    clock.set_source(lambda: moment.now)
    yield moment
    clock.set_source(None)


async def _office_policy(db: AsyncSession, **targets: int) -> None:
    calendar = await sla.create_calendar(
        db,
        name="London office",
        zone="Europe/London",
        week={str(d): [["09:00", "17:00"]] for d in range(5)},
        holiday_country="GB",
        holiday_region="ENG",
        closed_days=[],
        actor=AGENT,
    )
    await sla.create_policy(
        db,
        name="Standard",
        conditions={},
        targets={
            metric: {"minutes": minutes, "business": True} for metric, minutes in targets.items()
        },
        calendar_id=calendar.id,
        pause_statuses=["pending", "on-hold"],
        warn_minutes=30,
        actor=AGENT,
    )


def due(clocks: list[Any], metric: str) -> datetime | None:
    row = next(c for c in clocks if c.metric == metric and c.stopped_at is None)
    return row.due_at.astimezone(LONDON) if row.due_at else None


async def test_clocks_through_pause_weekend_and_easter(
    db: AsyncSession, frozen: Clock, make_customer: Callable[..., Awaitable[Any]]
) -> None:
    await _office_policy(db, first_reply=240, next_reply=120, resolution=960)
    customer = await make_customer()
    customer = await db.merge(customer)
    # Thursday before Easter, 15:00: Good Friday and Easter Monday are bank holidays
    ticket, _ = await tickets.create_ticket(
        db,
        subject="Where is my order?",
        requester=customer,
        channel="email",
        body_text="late",
        actor=AGENT,
    )
    clocks = await sla.clocks_of(db, ticket.id)
    assert due(clocks, "first_reply") == at("2026-04-07 11:00")  # 2 h Thu + 2 h Tue
    assert due(clocks, "resolution") == at("2026-04-08 15:00")  # 2 h Thu + 8 h Tue + 6 h Wed

    frozen.set("2026-04-02 16:00")  # reply and wait for the customer
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="agent",
        body_text="Checking",
        status="pending",
        actor=AGENT,
    )
    clocks = await sla.clocks_of(db, ticket.id)
    first = next(c for c in clocks if c.metric == "first_reply")
    assert (first.state, first.used_minutes) == ("met", 60)
    resolution = next(c for c in clocks if c.metric == "resolution")
    assert (resolution.state, resolution.used_minutes, resolution.due_at) == ("paused", 60, None)

    frozen.set("2026-04-07 10:30")  # the customer answers on Tuesday: pending -> open
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="customer",
        author_customer_id=customer.id,
        body_text="Still nothing",
        actor=AGENT,
    )
    clocks = await sla.clocks_of(db, ticket.id)
    assert ticket.status == "open"
    assert due(clocks, "resolution") == at("2026-04-09 09:30")  # 15 h left: 6.5 Tue, 8 Wed, 0.5 Thu
    assert due(clocks, "next_reply") == at("2026-04-07 12:30")

    frozen.set("2026-04-07 12:05")
    assert await sla.sweep(db) == (1, 0)  # next reply: warned 30 min before
    frozen.set("2026-04-07 12:31")
    assert await sla.sweep(db) == (0, 1)
    assert await sla.sweep(db) == (0, 0)  # nothing twice
    breach = (
        await events.query(db, subject_type="ticket", subject_id=ticket.id, kinds=["sla.breached"])
    ).items
    assert [(e.data["metric"], e.occurred_at.astimezone(LONDON)) for e in breach] == [
        ("next_reply", at("2026-04-07 12:30"))
    ]

    frozen.set("2026-04-08 10:00")
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="agent",
        body_text="Refunded",
        status="solved",
        actor=AGENT,
    )
    clocks = await sla.clocks_of(db, ticket.id)
    final = {c.metric: (c.state, round(c.used_minutes)) for c in clocks}
    # resolution: 60 before the pause, Tue 10:30-17:00 (390), Wed 09:00-10:00 (60)
    assert final == {
        "first_reply": ("met", 60),
        "next_reply": ("breached", 0),
        "resolution": ("met", 510),
    }


async def test_a_priority_change_moves_live_clocks_to_the_new_policy(
    db: AsyncSession, frozen: Clock, make_customer: Callable[..., Awaitable[Any]]
) -> None:
    frozen.set("2026-03-02 09:00")  # a Monday
    await _office_policy(db, first_reply=480, resolution=2400)
    urgent = await sla.create_policy(
        db,
        name="Urgent",
        conditions={"priority": ["urgent"]},
        targets={"first_reply": {"minutes": 60, "business": False}},
        calendar_id=None,
        pause_statuses=["pending"],
        warn_minutes=10,
        actor=AGENT,
    )
    await sla.update_policy(
        db, urgent, expected_version=urgent.version, changes={"position": -1}, actor=AGENT
    )
    customer = await db.merge(await make_customer())
    ticket, _ = await tickets.create_ticket(
        db, subject="Down", requester=customer, channel="web", body_text="site down", actor=AGENT
    )
    assert due(await sla.clocks_of(db, ticket.id), "first_reply") == at("2026-03-02 17:00")
    frozen.set("2026-03-02 09:20")
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"priority": "urgent"}, actor=AGENT
    )
    clocks = await sla.clocks_of(db, ticket.id)
    # 20 minutes used; 40 calendar minutes left under the urgent policy
    assert due(clocks, "first_reply") == at("2026-03-02 10:00")
    assert not [c for c in clocks if c.metric == "resolution" and c.stopped_at is None]
    kinds = [
        e.kind for e in (await events.query(db, subject_type="ticket", subject_id=ticket.id)).items
    ]
    assert "sla.policy_changed" in kinds


async def test_calendars_and_policies_refuse_bad_input(db: AsyncSession) -> None:
    from servicecycle.kit.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as no_hours:
        await sla.create_calendar(
            db,
            name="Empty",
            zone="UTC",
            week={},
            holiday_country=None,
            holiday_region=None,
            closed_days=[],
            actor=AGENT,
        )
    assert "week" in no_hours.value.fields
    with pytest.raises(ValidationFailed) as bad_day:
        await sla.create_calendar(
            db,
            name="Bad",
            zone="UTC",
            week={"0": [["09:00", "27:00"]]},
            holiday_country=None,
            holiday_region=None,
            closed_days=[],
            actor=AGENT,
        )
    assert "week.0" in bad_day.value.fields
    with pytest.raises(ValidationFailed) as bad_target:
        await sla.create_policy(
            db,
            name="P",
            conditions={},
            targets={"first_reply": {"minutes": "soon"}},
            calendar_id=None,
            pause_statuses=[],
            warn_minutes=10,
            actor=AGENT,
        )
    assert "targets.first_reply.minutes" in bad_target.value.fields
    with pytest.raises(ValidationFailed) as bad_condition:
        await sla.create_policy(
            db,
            name="P",
            conditions={"colour": ["red"]},
            targets={"first_reply": {"minutes": 5, "business": False}},
            calendar_id=None,
            pause_statuses=[],
            warn_minutes=10,
            actor=AGENT,
        )
    assert "conditions.colour" in bad_condition.value.fields
    with pytest.raises(ValidationFailed) as needs_calendar:
        await sla.create_policy(
            db,
            name="P",
            conditions={},
            targets={"resolution": {"minutes": 5}},
            calendar_id=None,
            pause_statuses=[],
            warn_minutes=10,
            actor=AGENT,
        )
    assert "calendar_id" in needs_calendar.value.fields


async def test_a_ticket_routed_at_creation_gets_one_set_of_clocks(
    db: AsyncSession,
    frozen: Clock,
    make_customer: Callable[..., Awaitable[Any]],
    make_user: Callable[..., Awaitable[Any]],
) -> None:
    from servicecycle.auth import service as auth

    await _office_policy(db, first_reply=240, resolution=960)
    team = await auth.create_team(db, name="Routed", description="", actor=AGENT)
    await auth.set_team_routing(db, team, "round_robin", actor=AGENT)
    agent = await auth.get_user(db, (await make_user("agent")).id)
    await auth.add_team_member(db, team, agent, actor=AGENT)
    await auth.set_availability(db, agent, "online", actor=AGENT)
    customer = await db.merge(await make_customer())
    ticket, _ = await tickets.create_ticket(
        db,
        subject="Routed",
        requester=customer,
        channel="web",
        body_text="x",
        team_id=team.id,
        actor=AGENT,
    )
    assert ticket.assignee_id == agent.id
    clocks = await sla.clocks_of(db, ticket.id)
    assert sorted(c.metric for c in clocks) == ["first_reply", "resolution"]
