"""Rows the batched services write by SQL are undone in the session when their transaction
or savepoint rolls back, as the ORM undoes its own (``db.written``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor
from servicecycle.tickets import bulk
from servicecycle.tickets.models import Message, Ticket

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)


def opening(customer: Customer, subject: str) -> bulk.NewTicket:
    return bulk.NewTicket(
        subject=subject,
        requester=customer,
        channel="web",
        body_text="It is late.",
        at=AT,
        actor=Actor("customer", str(customer.id)),
    )


async def test_a_rolled_back_savepoint_takes_its_sql_written_rows_out_of_the_session(
    db: AsyncSession, make_customer: Callable[..., Awaitable[Any]]
) -> None:
    customer = await db.get(Customer, (await make_customer()).id)
    assert customer is not None
    [(kept, _)] = await bulk.create_tickets(db, [opening(customer, "Kept")])
    savepoint = await db.begin_nested()
    [(lost, message)] = await bulk.create_tickets(db, [opening(customer, "Lost")])
    await bulk.set_statuses(db, [bulk.NewStatus(kept, "open", AT, Actor.system("test"))])
    assert kept.status == "open" and lost in db
    kept_id, lost_id, message_id = kept.id, lost.id, message.id
    await savepoint.rollback()

    # the new rows are gone from the session, as from the database
    assert lost not in db and message not in db
    assert await db.get(Ticket, lost_id) is None
    assert await db.get(Message, message_id) is None
    # the row changed by SQL in the savepoint is read again: its change was rolled back
    again = await db.get(Ticket, kept_id)
    assert again is kept and kept.status == "new"
    # and the transaction goes on with what was written before the savepoint
    await bulk.set_statuses(db, [bulk.NewStatus(kept, "open", AT, Actor.system("test"))])
    assert (await db.get(Ticket, kept_id)) is kept and kept.status == "open"


async def test_a_released_savepoints_rows_go_when_the_transaction_rolls_back(
    sessions: async_sessionmaker[AsyncSession], make_customer: Callable[..., Awaitable[Any]]
) -> None:
    made = await make_customer()
    async with sessions() as session:
        await session.begin()
        customer = await session.get(Customer, made.id)
        assert customer is not None
        async with session.begin_nested():  # released: its rows now belong to the transaction
            [(ticket, message)] = await bulk.create_tickets(session, [opening(customer, "Lost")])
        assert ticket in session
        ticket_id = ticket.id
        await session.rollback()
        assert ticket not in session and message not in session
        assert await session.get(Ticket, ticket_id) is None
