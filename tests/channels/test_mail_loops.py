"""Mail loops that no header gives away: a robot that answers every mail without
Auto-Submitted or Precedence gets a handful of acknowledgements, then none, while its mails
are still kept as tickets; after the window it is answered again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email import intake, outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.events.models import Event
from servicecycle.kit import clock
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.storage import DatabaseStorage

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def now() -> Iterator[list[datetime]]:
    current = [START]
    clock.set_source(lambda: current[0])
    yield current
    clock.set_source(None)


def robot_mail(n: int, sender: str = "robot@shop.example") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = sender, "help@desk.example"
    message["Subject"] = f"Re: your request (round {n})"  # no header says "automatic"
    message["Message-ID"] = f"<loop{n}.{sender}>"
    message.set_content("Thank you for your message.")
    return message.as_bytes()


async def acknowledgements(db: AsyncSession, to: str) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(OutboundMail)
        .where(OutboundMail.kind == "acknowledgement", OutboundMail.to_address == to)
    )
    return int(count or 0)


async def receive(db: AsyncSession, raw: bytes) -> intake.Outcome:
    return await intake.receive(db, raw, storage=DatabaseStorage(), max_file_bytes=1_000_000)


async def test_a_fast_sender_stops_being_acknowledged_but_its_mail_is_kept(
    db: AsyncSession, now: list[datetime]
) -> None:
    for n in range(outbox.ACK_LIMIT + 3):
        now[0] = START + timedelta(minutes=n)
        outcome = await receive(db, robot_mail(n))
        assert outcome.outcome == "ticket"

    assert await acknowledgements(db, "robot@shop.example") == outbox.ACK_LIMIT
    tickets = await db.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.subject.like("Re: your request%"))
    )
    assert tickets == outbox.ACK_LIMIT + 3  # nothing lost, only not answered
    suppressed = (await db.scalars(select(Event.data).where(Event.kind == "mail.suppressed"))).all()
    assert len(suppressed) == 3
    assert all("mail loop suspected" in data["reason"] for data in suppressed)

    # another customer writing meanwhile is answered as usual
    assert (await receive(db, robot_mail(100, sender="dana@example.com"))).outcome == "ticket"
    assert await acknowledgements(db, "dana@example.com") == 1

    # an hour after the burst the robot is answered again
    now[0] = START + timedelta(minutes=outbox.ACK_LIMIT + 2) + outbox.ACK_WINDOW
    await receive(db, robot_mail(200))
    assert await acknowledgements(db, "robot@shop.example") == outbox.ACK_LIMIT + 1
