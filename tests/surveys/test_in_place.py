"""Ratings given in place (chat, portal) through ``rate_in_place``: whose answer it is,
what the event log says, and two first ratings at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit.errors import ValidationFailed
from servicecycle.surveys import in_place, service
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., Awaitable[Any]]
ADMIN = Actor.system("test")


async def _csat(sessions: Sessions, *, rule: bool = False) -> Any:
    async with sessions() as session, session.begin():
        survey = await service.create_survey(
            session, name="CSAT", kind="csat", enabled=True, actor=ADMIN
        )
        if rule:
            await service.create_rule(session, survey, delay_hours=24, actor=ADMIN)
        return survey


async def _all(sessions: Sessions, stmt: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.scalars(stmt)).all())


async def _rate(sessions: Sessions, ticket_id: int, **kwargs: Any) -> SurveyResponse:
    async with sessions() as session, session.begin():
        ticket = await session.get(Ticket, ticket_id, populate_existing=True)
        assert ticket is not None
        return await in_place.rate(session, ticket, kind="csat", **kwargs)


async def test_after_a_requester_change_the_rating_is_the_new_requesters(
    sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _csat(sessions)
    ann = await make_customer("Ann")
    bob = await make_customer("Bob")
    ticket = await make_ticket("Broken printer", requester=ann)
    first = await _rate(sessions, ticket.id, score=5, comment="Ann was happy", source="portal")
    assert first.customer_id == ann.id
    async with sessions() as session, session.begin():  # a customer merge moves the ticket
        await tickets.move_requester(session, from_id=ann.id, to_id=bob.id, actor=ADMIN)

    # Bob is not shown Ann's score and comment
    async with sessions() as session:
        moved = await session.get(Ticket, ticket.id, populate_existing=True)
        assert moved is not None
        [offer] = await in_place.offers(session, moved)
    assert (offer.score, offer.comment) == (None, "")

    answer = await _rate(sessions, ticket.id, score=1, source="portal")
    assert (answer.customer_id, answer.score, answer.comment) == (bob.id, 1, "")
    [invitation] = await _all(sessions, select(SurveyInvitation))
    assert invitation.customer_id == bob.id
    # one answer per invitation: Ann's is replaced, and stays in the event log as hers
    [stored] = await _all(sessions, select(SurveyResponse))
    assert (stored.customer_id, stored.score) == (bob.id, 1)
    answered = await _all(
        sessions, select(Event).where(Event.kind == "survey.answered").order_by(Event.id)
    )
    assert [(e.actor_id, e.data["customer_id"], e.data["score"]) for e in answered] == [
        (str(ann.id), ann.id, 5),
        (str(bob.id), bob.id, 1),
    ]
    sent = await _all(sessions, select(Event).where(Event.kind == "survey.sent").order_by(Event.id))
    assert [e.data["customer_id"] for e in sent] == [ann.id, bob.id]
    assert sent[1].data["previous_customer_id"] == ann.id
    assert sent[1].data["dropped_response_id"] == first.id


async def test_an_invitation_made_or_sent_in_place_is_in_the_event_log(
    sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _csat(sessions, rule=True)
    ann = await make_customer("Ann")
    scheduled = await make_ticket("Scheduled by the rule", requester=ann)
    async with sessions() as session, session.begin():
        await tickets.set_status(
            session, await tickets.get_ticket(session, scheduled.id), "solved", actor=ADMIN
        )
    fresh = await make_ticket("Never solved", requester=ann, channel="chat")

    await _rate(sessions, scheduled.id, score=4, source="portal")  # flips scheduled -> sent
    await _rate(sessions, fresh.id, score=3, source="chat")  # makes one, as sent
    await _rate(sessions, fresh.id, score=5, source="chat")  # already sent: no news
    sent = await _all(sessions, select(Event).where(Event.kind == "survey.sent").order_by(Event.id))
    assert [(e.subject_id, e.data["via"], e.data["customer_id"]) for e in sent] == [
        (str(scheduled.id), "portal", ann.id),
        (str(fresh.id), "chat", ann.id),
    ]
    invitations = await _all(sessions, select(SurveyInvitation).order_by(SurveyInvitation.id))
    assert [i.status for i in invitations] == ["sent", "sent"]
    assert {e.data["invitation_id"] for e in sent} == {i.id for i in invitations}


async def test_a_refused_comment_writes_nothing(
    sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _csat(sessions)
    ticket = await make_ticket("Too wordy", requester=await make_customer("Ann"))
    with pytest.raises(ValidationFailed) as refused:
        await _rate(sessions, ticket.id, score=4, comment="x" * 4001, source="portal")
    assert refused.value.fields == {"comment": "at most 4000"}
    assert await _all(sessions, select(SurveyInvitation)) == []
    assert await _all(sessions, select(SurveyResponse)) == []
    on_tickets = select(Event).where(Event.kind.like("survey.%"), Event.subject_type == "ticket")
    assert await _all(sessions, on_tickets) == []


async def test_two_first_ratings_at_once_share_one_invitation(
    fresh_database: Callable[..., str],
) -> None:
    """Committed data and two connections: the second first rating waits for the first's
    invitation instead of failing on the unique (survey, ticket)."""
    engine = make_engine(fresh_database(), pool_size=3)
    made = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    try:
        async with made() as session, session.begin():
            await service.create_survey(
                session, name="CSAT", kind="csat", enabled=True, actor=ADMIN
            )
            customer = await customers.create_customer(
                session, name="Cy", emails=["cy@example.com"], actor=ADMIN
            )
            ticket, _ = await tickets.create_ticket(
                session,
                subject="Two tabs",
                requester=customer,
                channel="chat",
                body_text="hi",
                actor=ADMIN,
            )
        both_in = asyncio.Event()
        waiting = 0

        async def one(score: int) -> int:
            nonlocal waiting
            async with made() as session, session.begin():
                await session.execute(select(1))  # each holds its own connection first
                waiting += 1
                if waiting == 2:
                    both_in.set()
                await both_in.wait()
                row = await session.get(Ticket, ticket.id)
                assert row is not None
                response = await service.rate_in_place(
                    session, row, kind="csat", score=score, source="chat"
                )
                await asyncio.sleep(0.2)  # hold the lock while the other one tries
                return response.invitation_id

        first, second = await asyncio.gather(one(4), one(5))
        assert first == second
        async with made() as session:
            [invitation] = (await session.scalars(select(SurveyInvitation))).all()
            [answer] = (await session.scalars(select(SurveyResponse))).all()
            sent = (await session.scalars(select(Event).where(Event.kind == "survey.sent"))).all()
        assert invitation.id == first and answer.score in (4, 5)
        assert len(sent) == 1
    finally:
        await engine.dispose()
