"""Mail out to a real SMTP server (aiosmtpd), and the answer threading back in."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest
from aiosmtpd.controller import Controller
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.kit import clock
from tests.channels.test_email_intake import deliver, mail
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.mails.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[attr-defined]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, outbox.SmtpSettings]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield (
        inbox,
        outbox.SmtpSettings(
            host="127.0.0.1",
            port=port,
            username=None,
            password=None,
            starttls=False,
            sender="help@servicecycle.localhost",
        ),
    )
    controller.stop()


async def test_ack_reply_and_answer_thread_through_a_real_smtp_server(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, outbox.SmtpSettings],
) -> None:
    inbox, settings = smtp
    agent = await make_token("agent")
    first = await deliver(
        client,
        agent,
        mail(
            "Dana Fox <dana@example.com>",
            "Parcel missing",
            "Where is it?",
            Message_ID="<c1@example.com>",
        ),
    )
    ticket_id = first["ticket_id"]
    assert await outbox.deliver(sessions, settings) == (1, 0)
    ack = inbox.mails[-1]
    assert ack["To"] == "dana@example.com" and f"#{ticket_id}" in ack["Subject"]
    assert ack["In-Reply-To"] == "<c1@example.com>" and ack["Auto-Submitted"] == "auto-replied"
    assert ack["Reply-To"] == f"help+t{ticket_id}@servicecycle.localhost"

    await client.post(
        f"/api/v1/tickets/{ticket_id}/messages",
        headers=agent.headers,
        json={"kind": "reply", "body": "It arrives tomorrow."},
    )
    await client.post(
        f"/api/v1/tickets/{ticket_id}/messages",
        headers=agent.headers,
        json={"kind": "note", "body": "internal: courier says Friday"},
    )
    assert await outbox.deliver(sessions, settings) == (1, 0)  # the note is not mailed
    reply = inbox.mails[-1]
    assert reply["Subject"] == f"Re: [#{ticket_id}] Parcel missing"
    assert reply["In-Reply-To"] == "<c1@example.com>"
    assert reply["References"].split() == ["<c1@example.com>", ack["Message-ID"]]
    assert "It arrives tomorrow." in reply.get_content() and "courier" not in reply.get_content()

    answer = EmailMessage()
    answer["From"], answer["To"] = "dana@example.com", reply["Reply-To"]
    answer["Subject"], answer["Message-ID"] = "Re: Parcel", "<c2@example.com>"
    answer["In-Reply-To"] = reply["Message-ID"]
    answer.set_content("Thanks!")
    threaded = await deliver(client, agent, answer.as_bytes())
    assert threaded["outcome"] == "reply" and threaded["ticket_id"] == ticket_id


async def test_an_unreachable_server_is_retried_then_fails_visibly(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_token("agent")
    result = await deliver(client, agent, mail("x@example.com", "Hi", "hello"))
    down = outbox.SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        username=None,
        password=None,
        starttls=False,
        sender="help@servicecycle.localhost",
    )
    now = clock.now()
    for attempt in range(outbox.MAX_ATTEMPTS):
        sent, failed = await outbox.deliver(sessions, down, now=now + timedelta(hours=attempt * 3))
        assert sent == 0
    assert failed == 1
    async with sessions() as session:
        row = (
            await session.scalars(
                select(OutboundMail).where(OutboundMail.ticket_id == result["ticket_id"])
            )
        ).one()
    assert (
        row.status == "failed"
        and row.attempts == outbox.MAX_ATTEMPTS
        and "Error" in (row.last_error or "")
    )
    admin = await make_token("admin")
    events = (
        await client.get(
            "/api/v1/events",
            headers=admin.headers,
            params={"kind": "mail.failed", "subject_id": str(result["ticket_id"])},
        )
    ).json()
    assert len(events["items"]) == 1


class Refusing:
    """Refuses the recipient for good (550), or the content for now (451)."""

    def __init__(self, *, rcpt: str | None = None, data: str | None = None) -> None:
        self.rcpt, self.data = rcpt, data

    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return self.data or "250 OK"


@pytest.mark.parametrize(
    ("handler", "status", "attempts", "failed"),
    [
        (Refusing(rcpt="550 5.1.1 No such user"), "failed", 1, 1),
        (Refusing(data="554 5.7.1 Rejected as spam"), "failed", 1, 1),
        (Refusing(data="451 4.3.0 Try again later"), "queued", 1, 0),
    ],
    ids=["recipient-unknown", "content-refused", "temporary"],
)
async def test_a_permanent_refusal_fails_at_once_a_temporary_one_waits(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: async_sessionmaker[AsyncSession],
    handler: Refusing,
    status: str,
    attempts: int,
    failed: int,
) -> None:
    agent = await make_token("agent")
    result = await deliver(client, agent, mail("x@example.com", "Hi", "hello"))
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = outbox.SmtpSettings(
            host="127.0.0.1",
            port=port,
            username=None,
            password=None,
            starttls=False,
            sender="help@servicecycle.localhost",
        )
        now = clock.now()
        assert await outbox.deliver(sessions, smtp, now=now) == (0, failed)
    finally:
        controller.stop()
    async with sessions() as session:
        row = (
            await session.scalars(
                select(OutboundMail).where(OutboundMail.ticket_id == result["ticket_id"])
            )
        ).one()
    assert (row.status, row.attempts) == (status, attempts)
    assert row.last_error and row.last_error.split(":")[0].startswith("SMTP")
    if status == "queued":
        assert row.next_attempt_at == now + outbox.backoff(1) == now + timedelta(minutes=2)
    admin = await make_token("admin")
    events = (
        await client.get(
            "/api/v1/events",
            headers=admin.headers,
            params={"kind": "mail.failed", "subject_id": str(result["ticket_id"])},
        )
    ).json()["items"]
    assert len(events) == failed


async def test_the_scheduled_task_entry_sends_outside_the_session_it_is_given(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, outbox.SmtpSettings],
) -> None:
    """``deliver_due(session)`` (what ``channels.send_mail`` calls) claims and settles in
    transactions of its own: the mail is sent and recorded even if the task's own
    transaction is then rolled back."""
    inbox, settings = smtp
    agent = await make_token("agent")
    result = await deliver(client, agent, mail("t@example.com", "Hi", "hello"))
    async with sessions() as session:
        await session.begin()
        assert await outbox.deliver_due(session, settings) == (1, 0)
        await session.rollback()
    assert [m["To"] for m in inbox.mails] == ["t@example.com"]
    async with sessions() as session:
        row = (
            await session.scalars(
                select(OutboundMail).where(OutboundMail.ticket_id == result["ticket_id"])
            )
        ).one()
    assert (row.status, row.attempts) == ("sent", 1)


async def test_an_unreachable_server_defers_the_whole_batch_after_one_try(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    agent = await make_token("agent")
    for n in range(3):
        await deliver(client, agent, mail(f"u{n}@example.com", "Hi", "hello"))
    down = outbox.SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        username=None,
        password=None,
        starttls=False,
        sender="help@servicecycle.localhost",
    )
    now = clock.now()
    assert await outbox.deliver(sessions, down, now=now) == (0, 0)
    async with sessions() as session:
        rows = (await session.scalars(select(OutboundMail).order_by(OutboundMail.id))).all()
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == {
        ("queued", 1, now + outbox.backoff(1))
    }
    assert len({r.last_error for r in rows}) == 1  # one refused connection, told to all three
