"""Detractor recovery: the contract with surveys is one event, ``survey.answered``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.models import Event
from servicecycle.events.service import Actor, record
from servicecycle.followups import service
from servicecycle.followups.models import FollowUp
from tests.factories import Token
from tests.followups.conftest import Frozen, at

Make = Callable[..., Awaitable[Any]]
CUSTOMER = Actor("customer", "1")


async def answered(
    db: AsyncSession,
    ticket: Any,
    *,
    response_id: int,
    score: int,
    kind: str = "nps",
    detractor: bool,
    agent_id: int | None = None,
    updated: bool = False,
) -> None:
    await record(
        db,
        "survey.answered",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=Actor("customer", str(ticket.requester_id)),
        data={
            "response_id": response_id,
            "invitation_id": response_id + 1000,
            "kind": kind,
            "score": score,
            "customer_id": ticket.requester_id,
            "agent_id": agent_id,
            "team_id": None,
            "detractor": detractor,
            "updated": updated,
        },
    )


async def recoveries(db: AsyncSession, ticket: Any) -> list[FollowUp]:
    stmt = select(FollowUp).where(FollowUp.ticket_id == ticket.id, FollowUp.kind == "recovery")
    return list((await db.scalars(stmt)).all())


async def test_a_detractor_opens_a_recovery_for_the_owner_due_in_the_desks_hours(
    db: AsyncSession, make_ticket: Make, make_user: Make, frozen: Frozen
) -> None:
    owner, admin = await make_user("agent"), await make_user("admin")
    ticket = await make_ticket(assignee_id=owner.id)
    await service.save_settings(
        db, recovery_hours=8, check_in_template="", actor=Actor.user(admin.id)
    )
    await answered(db, ticket, response_id=1, score=3, detractor=True)
    [recovery] = await recoveries(db, ticket)
    assert recovery.owner_id == owner.id and recovery.state == "open"
    assert recovery.due_at == at(hours=8) and recovery.customer_id == ticket.requester_id
    assert (recovery.source_type, recovery.source_id) == ("survey_response", "1")
    assert recovery.created_by_type == "system" and "NPS 3" in recovery.reason


async def test_without_an_assignee_the_answer_s_agent_owns_it_else_nobody(
    db: AsyncSession, make_ticket: Make, make_user: Make, frozen: Frozen
) -> None:
    agent = await make_user("agent")
    first, second = await make_ticket(), await make_ticket()
    await answered(
        db, first, response_id=2, score=1, kind="csat", detractor=True, agent_id=agent.id
    )
    await answered(db, second, response_id=3, score=0, detractor=True)
    assert [r.owner_id for r in await recoveries(db, first)] == [agent.id]
    [unowned] = await recoveries(db, second)
    assert unowned.owner_id is None and unowned.due_at == at(hours=24)  # the default


async def test_a_happy_answer_opens_nothing_and_the_same_answer_twice_opens_one(
    db: AsyncSession, make_ticket: Make, frozen: Frozen
) -> None:
    ticket = await make_ticket()
    await answered(db, ticket, response_id=4, score=9, detractor=False)
    assert await recoveries(db, ticket) == []
    await answered(db, ticket, response_id=5, score=2, detractor=True)
    await answered(db, ticket, response_id=5, score=2, detractor=True)
    assert len(await recoveries(db, ticket)) == 1


async def test_a_second_unhappy_answer_on_the_ticket_is_noted_on_the_open_recovery(
    db: AsyncSession, make_ticket: Make, frozen: Frozen
) -> None:
    ticket = await make_ticket()
    await answered(db, ticket, response_id=6, score=2, detractor=True)
    await answered(db, ticket, response_id=7, score=1, kind="csat", detractor=True)
    assert len(await recoveries(db, ticket)) == 1
    notes = await db.scalars(
        select(Event).where(Event.kind == "follow_up.updated", Event.subject_id == str(ticket.id))
    )
    assert ["CSAT 1" in e.data["note"] for e in notes] == [True]


async def test_a_happier_score_later_leaves_the_recovery_open_and_notes_it(
    db: AsyncSession, make_ticket: Make, frozen: Frozen
) -> None:
    ticket = await make_ticket()
    await answered(db, ticket, response_id=8, score=4, detractor=True)
    await answered(db, ticket, response_id=8, score=9, detractor=False, updated=True)
    [recovery] = await recoveries(db, ticket)
    assert recovery.state == "open"
    note = (
        await db.scalars(
            select(Event).where(
                Event.kind == "follow_up.updated", Event.subject_id == str(ticket.id)
            )
        )
    ).one()
    assert "NPS 9" in note.data["note"] and note.data["follow_up_id"] == recovery.id


async def test_the_recovery_rate_counts_loops_closed_in_time_and_late(
    db: AsyncSession,
    make_ticket: Make,
    make_user: Make,
    client: AsyncClient,
    make_token: Callable[..., Awaitable[Token]],
    frozen: Frozen,
) -> None:
    agent = await make_user("agent")
    me = Actor.user(agent.id)
    tickets = [await make_ticket(assignee_id=agent.id) for _ in range(5)]
    for n, ticket in enumerate(tickets):
        await answered(db, ticket, response_id=100 + n, score=2, detractor=True)
    found = [(await recoveries(db, t))[0] for t in tickets]
    frozen.move(hours=2)
    await service.complete(db, found[0], outcome="resolved", actor=me)  # in time
    await service.complete(db, found[1], outcome="escalated", actor=me)  # in time
    frozen.move(hours=30)
    await service.complete(db, found[2], outcome="no_answer", actor=me)  # late (due at +24 h)
    await service.cancel(db, found[3], actor=me)
    # found[4] stays open; 3 closed of 5 opened
    await db.commit()  # let the API's transaction see them

    report = await service.recovery_report(db)
    assert (report.opened, report.closed_in_time, report.closed_late) == (5, 2, 1)
    assert (report.still_open, report.cancelled, report.rate) == (1, 1, 0.6)

    token = await make_token("analyst")
    response = await client.get(
        "/api/v1/follow-ups/recovery", params={"owner": agent.id}, headers=token.headers
    )
    assert response.status_code == 200
    assert response.json() == {
        "opened": 5,
        "closed_in_time": 2,
        "closed_late": 1,
        "still_open": 1,
        "cancelled": 1,
        "rate": 0.6,
    }
    later = await client.get(
        "/api/v1/follow-ups/recovery",
        params={"since": (at() + timedelta(hours=1)).isoformat()},
        headers=token.headers,
    )
    assert later.json()["opened"] == 0 and later.json()["rate"] is None


async def test_an_automation_asks_for_a_follow_up_by_event(
    db: AsyncSession, make_ticket: Make, make_user: Make, frozen: Frozen
) -> None:
    """The contract for automation's ``add_follow_up`` action: it records
    ``follow_up.requested`` on the ticket; follow-ups does the rest."""
    agent = await make_user("agent")
    ticket = await make_ticket(assignee_id=agent.id)
    rule = Actor("rule", "12")
    await record(
        db,
        "follow_up.requested",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=rule,
        data={"reason": "Check in a week after solving", "due_in_hours": 168, "owner": "assignee"},
    )
    [made] = (await db.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket.id))).all()
    assert (made.owner_id, made.kind, made.due_at) == (agent.id, "check_in", at(days=7))
    assert (made.created_by_type, made.created_by_id) == ("rule", "12")

    await record(
        db,
        "follow_up.requested",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=rule,
        data={"reason": "", "due_in_hours": 1},
    )
    refused = (await db.scalars(select(Event).where(Event.kind == "follow_up.refused"))).one()
    assert refused.data["fields"] == {"reason": "must not be empty"}
