"""The profile read on real data: replies, reopens by a customer's reply, a detractor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.service import Actor
from servicecycle.profiles import service
from servicecycle.surveys import service as surveys
from servicecycle.tickets import service as tickets
from tests.profiles.conftest import ADMIN, Clock


async def test_a_detractor_whose_ticket_came_back_is_at_risk(
    sessions: async_sessionmaker[AsyncSession],
    make_customer: Any,
    make_ticket: Any,
    make_user: Any,
    frozen: Clock,
) -> None:
    agent = await make_user("agent")
    customer = await make_customer("Cleo")
    ticket = await make_ticket("Refund", requester=customer)
    async with sessions() as session, session.begin():
        await surveys.create_survey(session, name="NPS", kind="nps", enabled=True, actor=ADMIN)
    frozen.advance(hours=30)
    async with sessions() as session, session.begin():
        row = await tickets.get_ticket(session, ticket.id)
        await tickets.add_message(  # the first reply, 30 h late, solving it
            session,
            row,
            public=True,
            author_type="agent",
            author_user_id=agent.id,
            body_text="Refunded.",
            status="solved",
            actor=Actor("user", str(agent.id)),
        )
        await surveys.rate_in_place(session, row, kind="nps", score=4, source="portal")
    frozen.advance(days=2)
    async with sessions() as session, session.begin():
        row = await tickets.get_ticket(session, ticket.id)
        await tickets.add_message(  # the customer writes back: reopened
            session,
            row,
            public=True,
            author_type="customer",
            author_customer_id=customer.id,
            body_text="Not refunded at all.",
            actor=Actor("customer", str(customer.id)),
        )
    async with sessions() as session:
        found = await service.profile(session, customer.id)
    # NPS 4 -> 16; one open -> 15; one reopen -> 10; waited 30 h -> 5: 46
    assert [p.points for p in found.parts] == [16, 15, 10, 5]
    assert (found.score, found.segment) == (46, "at_risk")
    assert found.history.tickets_open == 1 and found.history.surveys_answered == 1
    assert found.feedback is not None and found.feedback.score == 4


async def test_reopens_older_than_ninety_days_are_forgotten(
    sessions: async_sessionmaker[AsyncSession], make_ticket: Any, frozen: Clock
) -> None:
    ticket = await make_ticket()
    async with sessions() as session, session.begin():
        row = await tickets.get_ticket(session, ticket.id)
        await tickets.set_status(session, row, "solved", actor=ADMIN)
        await tickets.set_status(session, row, "open", actor=ADMIN)
        await tickets.set_status(session, row, "solved", actor=ADMIN)
    async with sessions() as session:
        assert (await service.profile(session, ticket.requester_id)).parts[2].value == "1 reopened"
    frozen.advance(days=91)
    async with sessions() as session:
        profile = await service.profile(session, ticket.requester_id)
    assert profile.parts[2].value == "0 reopened"
    # a ticket solved without any reply does not count for the wait
    assert profile.parts[3].value == "none" and profile.history.tickets_solved == 1
    assert profile.history.first_contact_at == frozen.at - timedelta(days=91)
