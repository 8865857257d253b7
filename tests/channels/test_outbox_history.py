"""History that is loaded, not lived: its queued mail is settled as sent to no one, at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.events.models import Event
from servicecycle.kit import clock


async def test_settle_history_marks_queued_mail_up_to_a_time_sent_with_its_events(
    sessions: async_sessionmaker[AsyncSession],
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    early = await make_ticket("Lamp broken")  # an e-mail ticket: its acknowledgement is queued
    now = clock.now()
    async with sessions() as session, session.begin():
        later = await session.get(OutboundMail, await _mail_of(session, early.id))
        assert later is not None
        later.next_attempt_at = now + timedelta(hours=2)  # due after the moment settled
    second = await make_ticket("Shelf wobbles")
    async with sessions() as session, session.begin():
        settled = await outbox.settle_history(session, until=now + timedelta(hours=1), note="old")
        assert settled == 1
        row = await session.get(OutboundMail, await _mail_of(session, second.id))
        assert row is not None
        assert (row.status, row.attempts, row.sent_at) == ("sent", 1, now + timedelta(hours=1))
        waiting = await session.get(OutboundMail, await _mail_of(session, early.id))
        assert waiting is not None and waiting.status == "queued"
        events = (
            await session.scalars(select(Event).where(Event.kind == "mail.sent").order_by(Event.id))
        ).all()
        assert [(e.subject_id, e.actor_type, e.actor_id, e.occurred_at) for e in events] == [
            (str(second.id), "system", "email", now + timedelta(hours=1))
        ]
        assert events[0].data == {
            "outbound_id": row.id,
            "message_id": row.message_id,
            "kind": "acknowledgement",
            "attempts": 1,
            "to": None,
            "note": "old",
        }
        # settled once: a second call finds nothing more to settle
        assert await outbox.settle_history(session, until=now + timedelta(hours=1), note="x") == 0


async def _mail_of(session: AsyncSession, ticket_id: int) -> int:
    found = await session.scalar(select(OutboundMail.id).where(OutboundMail.ticket_id == ticket_id))
    assert found is not None
    return found
