"""A sender killed in the middle of SMTP DATA loses no mail and never sends it under a second
Message-ID: the row stays ``sending``, and once its lease is over it is sent again, same id."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import intake, outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.models import Event
from servicecycle.kit import clock
from servicecycle.tickets.storage import DatabaseStorage
from tests.channels.test_email_out import free_port

SENDER = """
import asyncio, sys
from servicecycle.channels.email import outbox
from servicecycle.db.engine import make_engine, make_sessionmaker

async def main() -> None:
    engine = make_engine(sys.argv[1], pool_size=1)
    smtp = outbox.SmtpSettings(host="127.0.0.1", port=int(sys.argv[2]), username=None,
                               password=None, starttls=False, sender="help@desk.example")
    print(await outbox.deliver(make_sessionmaker(engine), smtp))

asyncio.run(main())
"""


class StallingInbox:
    """Blocks the first DATA until released; ``keep_first`` stores that mail before blocking
    (the worst case: the server has it, the sender never hears so)."""

    def __init__(self, *, keep_first: bool) -> None:
        self.keep_first = keep_first
        self.mails: list[Message] = []
        self.in_data = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[attr-defined]
        if not self.in_data.is_set():
            if self.keep_first:
                self.mails.append(mail)
            self.in_data.set()
            await asyncio.to_thread(self.release.wait)
            return "250 OK (to nobody: the sender is gone)"
        self.mails.append(mail)
        return "250 OK"


@pytest.fixture
async def committed(
    fresh_database: Callable[..., str],
) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = fresh_database()
    engine = make_engine(url, pool_size=2)
    yield url, make_sessionmaker(engine)
    await engine.dispose()


async def _queue_an_acknowledgement(sessions: async_sessionmaker[AsyncSession]) -> OutboundMail:
    message = EmailMessage()
    message["From"], message["To"] = "dana@example.com", "help@desk.example"
    message["Subject"], message["Message-ID"] = "Parcel missing", "<crash-1@example.com>"
    message.set_content("Where is it?")
    async with unit_of_work(sessions) as session:
        outcome = await intake.receive(
            session, message.as_bytes(), storage=DatabaseStorage(), max_file_bytes=1_000_000
        )
        assert outcome.outcome == "ticket"
        return (await session.scalars(select(OutboundMail))).one()


async def _row(sessions: async_sessionmaker[AsyncSession], row_id: int) -> OutboundMail:
    async with sessions() as session:
        row = await session.get(OutboundMail, row_id)
        assert row is not None
        return row


@pytest.mark.parametrize("keep_first", [True, False], ids=["server-kept-it", "server-had-not"])
async def test_a_sender_killed_mid_data_neither_loses_nor_renames_the_mail(
    committed: tuple[str, async_sessionmaker[AsyncSession]], keep_first: bool
) -> None:
    url, sessions = committed
    queued = await _queue_an_acknowledgement(sessions)
    inbox = StallingInbox(keep_first=keep_first)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sender = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SENDER,
            url,
            str(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # a guard, not a timing: the sender reaches DATA in well under two minutes
            reached = await asyncio.to_thread(inbox.in_data.wait, 120)
            assert reached, "the sender never sent DATA"
            during = await _row(sessions, queued.id)
            # the claim was committed before the first byte of SMTP
            assert (during.status, during.attempts) == ("sending", 1)
            assert during.claim_token and during.claimed_until
            sender.send_signal(signal.SIGKILL)
            assert await sender.wait() == -signal.SIGKILL
        finally:
            if sender.returncode is None:
                sender.kill()
                await sender.wait()
        inbox.release.set()

        smtp = outbox.SmtpSettings(
            host="127.0.0.1",
            port=port,
            username=None,
            password=None,
            starttls=False,
            sender="help@desk.example",
        )
        # while the dead sender's lease lasts nobody else sends the mail
        assert await outbox.deliver(sessions, smtp) == (0, 0)
        later = clock.now() + outbox.LEASE + timedelta(seconds=1)
        assert await outbox.deliver(sessions, smtp, now=later) == (1, 0)
        assert await outbox.deliver(sessions, smtp, now=later + outbox.LEASE) == (0, 0)
    finally:
        inbox.release.set()
        controller.stop()

    after = await _row(sessions, queued.id)
    assert (after.status, after.attempts, after.claim_token) == ("sent", 2, None)
    assert "stopped unfinished" in (after.last_error or "")
    ids = [mail["Message-ID"] for mail in inbox.mails]
    assert set(ids) == {queued.message_id}  # one identity, however many copies
    assert len(ids) == (2 if keep_first else 1)
    assert inbox.mails[-1]["In-Reply-To"] == "<crash-1@example.com>"
    async with sessions() as session:
        sent_events = await session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "mail.sent")
        )
    assert sent_events == 1


async def test_a_mail_whose_sender_dies_every_time_fails_visibly(
    committed: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    """A poison mail (its sending kills the sender each time) stops after MAX_ATTEMPTS."""
    _, sessions = committed
    queued = await _queue_an_acknowledgement(sessions)
    async with unit_of_work(sessions) as session:
        row = await session.get(OutboundMail, queued.id)
        assert row is not None
        row.status, row.attempts = "sending", outbox.MAX_ATTEMPTS
        row.claim_token, row.claimed_until = "dead", clock.now()
    smtp = outbox.SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        username=None,
        password=None,
        starttls=False,
        sender="help@desk.example",
    )
    assert await outbox.deliver(sessions, smtp) == (0, 1)
    after = await _row(sessions, queued.id)
    assert after.status == "failed" and after.claim_token is None
    async with sessions() as session:
        failed = (await session.scalars(select(Event).where(Event.kind == "mail.failed"))).one()
    assert failed.subject_id == str(after.ticket_id)
    assert "stopped unfinished" in failed.data["error"]
