"""Follow-ups: planning, closing the loop, the due queue and its counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.followups import service
from servicecycle.kit.errors import Conflict, PreconditionFailed, ValidationFailed
from tests.followups.conftest import Frozen, at

Make = Callable[..., Awaitable[Any]]
ME = Actor.user(1)


async def kinds(db: AsyncSession, subject: tuple[str, str]) -> list[str]:
    stmt = select(Event.kind).where(
        Event.subject_type == subject[0],
        Event.subject_id == subject[1],
        Event.kind.like("follow_up.%"),
    )
    return list((await db.scalars(stmt.order_by(Event.id))).all())


async def test_a_follow_up_on_a_ticket_belongs_to_its_customer_and_shows_in_its_history(
    db: AsyncSession, make_ticket: Make, make_user: Make, frozen: Frozen
) -> None:
    agent = await make_user("agent")
    ticket = await make_ticket()
    follow_up = await service.create(
        db,
        ticket_id=ticket.id,
        owner_id=agent.id,
        kind="check_in",
        reason="Check the replacement works",
        due_at=at(days=7),
        actor=Actor.user(agent.id),
    )
    assert follow_up.customer_id == ticket.requester_id and follow_up.state == "open"
    assert follow_up.created_by_type == "user" and follow_up.created_by_id == str(agent.id)
    await service.update(
        db, follow_up, changes={"due_at": at(days=8)}, actor=ME, expected_version=1
    )
    await service.complete(db, follow_up, outcome="resolved", note="All good", actor=ME)
    assert follow_up.state == "done" and follow_up.done_at == at()
    assert await kinds(db, ("ticket", str(ticket.id))) == [
        "follow_up.created",
        "follow_up.updated",
        "follow_up.done",
    ]


async def test_without_a_ticket_the_events_are_about_the_customer(
    db: AsyncSession, make_customer: Make, frozen: Frozen
) -> None:
    customer = await make_customer()
    follow_up = await service.create(
        db, customer_id=customer.id, reason="Renewal call", due_at=at(days=30), actor=ME
    )
    await service.cancel(db, follow_up, note="Customer left", actor=ME)
    assert follow_up.state == "cancelled"
    assert await kinds(db, ("customer", str(customer.id))) == [
        "follow_up.created",
        "follow_up.cancelled",
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": "  "}, "reason"),
        ({"kind": "visit"}, "kind"),
        ({"owner_id": 999_999}, "owner_id"),
        ({"ticket_id": 999_999}, "ticket_id"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    db: AsyncSession, make_ticket: Make, changes: dict[str, Any], field: str
) -> None:
    ticket = await make_ticket()
    values: dict[str, Any] = {"ticket_id": ticket.id, "reason": "Call", "due_at": at(days=1)}
    with pytest.raises(ValidationFailed) as caught:
        await service.create(db, actor=ME, **{**values, **changes})
    assert field in caught.value.fields


async def test_the_owner_must_be_an_active_agent(
    db: AsyncSession, make_ticket: Make, make_user: Make
) -> None:
    analyst = await make_user("analyst")
    ticket = await make_ticket()
    with pytest.raises(ValidationFailed) as caught:
        await service.create(
            db, ticket_id=ticket.id, owner_id=analyst.id, reason="x", due_at=at(), actor=ME
        )
    assert caught.value.fields == {"owner_id": "not an active agent"}


async def test_done_needs_an_outcome_and_only_open_ones_change(
    db: AsyncSession, make_ticket: Make, frozen: Frozen
) -> None:
    ticket = await make_ticket()
    follow_up = await service.create(
        db, ticket_id=ticket.id, reason="Call back", due_at=at(hours=2), actor=ME
    )
    with pytest.raises(ValidationFailed) as caught:
        await service.complete(db, follow_up, outcome=None, actor=ME)
    assert "outcome" in caught.value.fields
    with pytest.raises(ValidationFailed):
        await service.complete(db, follow_up, outcome="happy", actor=ME)
    with pytest.raises(PreconditionFailed):
        await service.update(db, follow_up, changes={"reason": "x"}, actor=ME, expected_version=7)
    await service.complete(db, follow_up, outcome="no_answer", actor=ME)
    with pytest.raises(Conflict):
        await service.cancel(db, follow_up, actor=ME)
    with pytest.raises(Conflict):
        await service.update(db, follow_up, changes={"due_at": at(days=1)}, actor=ME)


async def test_a_due_time_in_the_past_is_allowed_and_overdue_at_once(
    db: AsyncSession, make_ticket: Make, frozen: Frozen
) -> None:
    ticket = await make_ticket()
    await service.create(
        db, ticket_id=ticket.id, reason="Missed call", due_at=at(hours=-1), actor=ME
    )
    page = await service.list_follow_ups(db, service.Filter(overdue=True, ticket_id=ticket.id))
    assert len(page.items) == 1


async def test_the_due_queue_and_its_counts_follow_the_clock(
    db: AsyncSession, make_ticket: Make, make_user: Make, frozen: Frozen
) -> None:
    mine, other = await make_user("agent"), await make_user("agent")
    ticket = await make_ticket()

    async def plan(owner: int | None, **due: float) -> Any:
        return await service.create(
            db, ticket_id=ticket.id, owner_id=owner, reason="r", due_at=at(**due), actor=ME
        )

    late = await plan(mine.id, hours=-3)  # overdue
    soon = await plan(mine.id, hours=5)  # due today (10:00 + 5 h, before midnight UTC)
    await plan(mine.id, days=2)  # later
    await plan(other.id, hours=-1)  # someone else's, overdue
    await plan(None, hours=1)  # nobody's yet
    done = await plan(mine.id, hours=-5)
    await service.complete(db, done, outcome="resolved", actor=ME)

    assert await service.counts(db, owner_id=mine.id) == service.Counts(
        overdue=1, due_today=1, open=3
    )
    everyone = await service.counts(db)
    assert (everyone.overdue, everyone.due_today, everyone.open) == (2, 2, 5)

    queue = await service.list_follow_ups(db, service.Filter(owner=mine.id), limit=2)
    assert [f.id for f in queue.items] == [late.id, soon.id] and queue.next_cursor
    rest = await service.list_follow_ups(
        db, service.Filter(owner=mine.id), limit=2, cursor=queue.next_cursor
    )
    assert len(rest.items) == 1 and rest.next_cursor is None
    nobody = await service.list_follow_ups(db, service.Filter(owner="none"))
    assert [f.owner_id for f in nobody.items] == [None]

    frozen.move(hours=6)  # 16:00: the one due at 15:00 is now overdue too
    assert (await service.counts(db, owner_id=mine.id)).overdue == 2
