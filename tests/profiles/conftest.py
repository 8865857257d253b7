"""Fixtures of the profiles tests: a clock that moves only when told, and a customer with
some history (two tickets, a reopen, a CSAT answer, follow-ups)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.service import Actor
from servicecycle.followups import service as followups
from servicecycle.kit import clock
from servicecycle.surveys import service as surveys
from servicecycle.tickets import service as tickets

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADMIN = Actor.system("test")


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: Any) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def frozen() -> Iterator[Clock]:
    moment = Clock()
    clock.set_source(moment)
    yield moment
    clock.set_source(None)


@dataclass
class Story:
    customer: Any
    first: Any
    second: Any


@pytest.fixture
def story(
    sessions: async_sessionmaker[AsyncSession],
    make_customer: Callable[..., Awaitable[Any]],
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Clock,
) -> Callable[[], Awaitable[Story]]:
    """Ana: ticket 1 answered after 2 h, solved, rated CSAT 5, reopened and solved again;
    ticket 2 still open without a reply for 10 h; one follow-up open, one done.
    Hand-computed health: CSAT 5 -> 40, 1 open -> 15, 1 reopen -> 10,
    median wait of 10 h and 2 h = 6 h -> 12: 77, promoter."""

    async def make() -> Story:
        customer = await make_customer("Ana Lima", email="ana@example.com")
        first = await make_ticket("Broken zip", requester=customer)
        async with sessions() as session, session.begin():
            await surveys.create_survey(
                session, name="CSAT", kind="csat", enabled=True, actor=ADMIN
            )
            ticket = await tickets.get_ticket(session, first.id)
            ticket.first_reply_at = START + timedelta(hours=2)
        frozen.advance(days=1)
        async with sessions() as session, session.begin():
            ticket = await tickets.get_ticket(session, first.id)
            await tickets.set_status(session, ticket, "solved", actor=ADMIN)
            await surveys.rate_in_place(session, ticket, kind="csat", score=5, source="portal")
        frozen.advance(days=1)
        async with sessions() as session, session.begin():
            ticket = await tickets.get_ticket(session, first.id)
            await tickets.set_status(session, ticket, "open", actor=ADMIN)
            await tickets.set_status(session, ticket, "solved", actor=ADMIN)
        frozen.advance(days=1)
        second = await make_ticket("Still broken", requester=customer)
        async with sessions() as session, session.begin():
            await followups.create(
                session,
                reason="Call back",
                due_at=frozen.at + timedelta(days=1),
                customer_id=customer.id,
                actor=ADMIN,
            )
            done = await followups.create(
                session,
                reason="Check in",
                due_at=frozen.at,
                customer_id=customer.id,
                actor=ADMIN,
            )
            await followups.complete(session, done, outcome="resolved", actor=ADMIN)
        frozen.advance(hours=10)
        return Story(customer=customer, first=first, second=second)

    return make
