"""Periodic-update clocks and a customer's tier choosing the policy again, with a frozen clock;
every due time checked to the minute against hand-computed values (London office hours,
Monday to Friday 09:00-17:00, England's bank holidays: Good Friday 3 April and Easter
Monday 6 April 2026)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.sla.models import SlaClock, SlaPolicy
from servicecycle.tickets import service as tickets

LONDON = ZoneInfo("Europe/London")
AGENT = Actor.user(1)
Make = Callable[..., Awaitable[Any]]


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


async def _policy(
    db: AsyncSession,
    name: str = "Standard",
    conditions: dict[str, Any] | None = None,
    **targets: int,
) -> SlaPolicy:
    calendar = next((c for c in await sla.list_calendars(db) if c.name == "London office"), None)
    if calendar is None:
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
    return await sla.create_policy(
        db,
        name=name,
        conditions=conditions or {},
        targets={metric: {"minutes": m, "business": True} for metric, m in targets.items()},
        calendar_id=calendar.id,
        pause_statuses=["pending", "on-hold"],
        warn_minutes=30,
        actor=AGENT,
    )


def periodic(clocks: list[SlaClock]) -> list[SlaClock]:
    return [c for c in clocks if c.metric == "periodic_update"]


def local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(LONDON) if moment else None


async def _reply(db: AsyncSession, ticket: Any, **extra: Any) -> None:
    await tickets.add_message(
        db, ticket, public=True, author_type="agent", body_text="Update", actor=AGENT, **extra
    )


async def test_periodic_updates_run_from_reply_to_reply_across_easter(
    db: AsyncSession, frozen: Clock, make_customer: Make
) -> None:
    await _policy(db, first_reply=240, periodic_update=180, resolution=2400)
    customer = await db.merge(await make_customer())
    # Thursday before Easter, 15:00
    ticket, _ = await tickets.create_ticket(
        db, subject="Broken", requester=customer, channel="email", body_text="x", actor=AGENT
    )
    clocks = await sla.clocks_of(db, ticket.id)
    assert sorted(c.metric for c in clocks) == ["first_reply", "resolution"]  # none owed yet

    frozen.set("2026-04-02 16:00")  # the first reply: the first update is owed from now
    await _reply(db, ticket)
    (update,) = periodic(await sla.clocks_of(db, ticket.id))
    # 1 h on Thursday, closed Good Friday to Easter Monday, 2 h on Tuesday
    assert (update.state, local(update.due_at)) == ("running", at("2026-04-07 11:00"))
    assert local(update.warn_at) == at("2026-04-07 10:30")

    frozen.set("2026-04-02 16:30")  # waiting on a third party: paused with 30 min used
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"status": "on-hold"}, actor=AGENT
    )
    await db.refresh(update)
    assert (update.state, update.used_minutes, update.due_at) == ("paused", 30, None)

    frozen.set("2026-04-07 10:00")  # back on Tuesday: 150 min left
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"status": "open"}, actor=AGENT
    )
    await db.refresh(update)
    assert (update.state, local(update.due_at)) == ("running", at("2026-04-07 12:30"))

    frozen.set("2026-04-07 12:05")
    assert await sla.sweep(db) == (1, 0)
    frozen.set("2026-04-07 12:31")
    assert await sla.sweep(db) == (0, 1)
    breaches = (
        await events.query(db, subject_type="ticket", subject_id=ticket.id, kinds=["sla.breached"])
    ).items
    assert [(e.data["metric"], local(e.occurred_at)) for e in breaches] == [
        ("periodic_update", at("2026-04-07 12:30"))
    ]

    frozen.set("2026-04-07 15:00")  # the late update: the next one is owed by 18:00 ... Wed 10:00
    await _reply(db, ticket)
    first, second = periodic(await sla.clocks_of(db, ticket.id))
    assert (first.state, local(first.stopped_at)) == ("breached", at("2026-04-07 15:00"))
    assert (second.state, local(second.due_at)) == ("running", at("2026-04-08 10:00"))

    frozen.set("2026-04-08 09:30")  # solved with a reply: that reply owes no further update
    await _reply(db, ticket, status="solved")
    clocks = await sla.clocks_of(db, ticket.id)
    assert [(c.state, round(c.used_minutes)) for c in periodic(clocks)] == [
        ("breached", 30),  # a breached clock keeps the time it had used when it last ran
        ("met", 150),  # Tue 15:00-17:00 and Wed 09:00-09:30
    ]
    assert all(c.stopped_at is not None for c in clocks)
    met = (
        await events.query(db, subject_type="ticket", subject_id=ticket.id, kinds=["sla.met"])
    ).items
    assert sorted(e.data["metric"] for e in met) == ["first_reply", "periodic_update", "resolution"]


async def test_without_a_first_reply_target_updates_are_owed_from_creation_and_reopening(
    db: AsyncSession, frozen: Clock, make_customer: Make
) -> None:
    await _policy(db, periodic_update=120)
    customer = await db.merge(await make_customer())
    frozen.set("2026-04-02 16:00")
    ticket, _ = await tickets.create_ticket(
        db, subject="Broken", requester=customer, channel="email", body_text="x", actor=AGENT
    )
    (update,) = periodic(await sla.clocks_of(db, ticket.id))
    assert local(update.due_at) == at("2026-04-07 10:00")  # 1 h Thursday, 1 h Tuesday

    frozen.set("2026-04-02 16:10")
    await _reply(db, ticket, status="solved")
    assert [c.state for c in periodic(await sla.clocks_of(db, ticket.id))] == ["met"]

    frozen.set("2026-04-07 09:15")  # the customer writes again: reopened, an update is owed
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="customer",
        author_customer_id=customer.id,
        body_text="Still broken",
        actor=AGENT,
    )
    clocks = periodic(await sla.clocks_of(db, ticket.id))
    assert [(c.state, local(c.due_at)) for c in clocks] == [
        ("met", at("2026-04-07 10:00")),  # a stopped clock keeps the due time it had
        ("running", at("2026-04-07 11:15")),
    ]


async def test_a_new_tier_chooses_the_policy_again_for_open_tickets(
    db: AsyncSession, frozen: Clock, make_customer: Make
) -> None:
    frozen.set("2026-03-02 09:00")  # a Monday
    await _policy(db, "Standard", first_reply=480, resolution=2400)
    vip = await _policy(db, "VIP", {"tier": ["vip"]}, first_reply=60, periodic_update=120)
    await sla.update_policy(
        db, vip, expected_version=vip.version, changes={"position": -1}, actor=AGENT
    )
    customer = await db.merge(await make_customer())
    opened, _ = await tickets.create_ticket(
        db, subject="Open", requester=customer, channel="web", body_text="x", actor=AGENT
    )
    done, _ = await tickets.create_ticket(
        db, subject="Done", requester=customer, channel="web", body_text="x", actor=AGENT
    )
    await _reply(db, done, status="solved")

    frozen.set("2026-03-02 09:20")
    await customers.update_customer(
        db, customer, expected_version=customer.version, changes={"tier": "vip"}, actor=AGENT
    )
    live = [c for c in await sla.clocks_of(db, opened.id) if c.stopped_at is None]
    # 20 minutes used of the VIP hour; VIP has no resolution target
    assert [(c.metric, c.policy_id, local(c.due_at)) for c in live] == [
        ("first_reply", vip.id, at("2026-03-02 10:00"))
    ]
    changed = (await events.query(db, subject_type="ticket", kinds=["sla.policy_changed"])).items
    assert [(e.subject_id, e.data["to"]) for e in changed] == [(str(opened.id), vip.id)]

    frozen.set("2026-03-02 09:30")  # the VIP policy's periodic updates start with the reply
    await _reply(db, opened)
    (update,) = periodic(await sla.clocks_of(db, opened.id))
    assert (update.policy_id, local(update.due_at)) == (vip.id, at("2026-03-02 11:30"))
