"""Acceptance: a conversation by e-mail, end to end, through real SMTP both ways.

The customer's mail reaches the desk's SMTP listener (smtplib); the desk's mail leaves
through the outbox to an SMTP server run by the test (aiosmtpd), where it is read back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage, Message

import pytest
from aiosmtpd.controller import Controller
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import outbox
from servicecycle.channels.models import InboundMail, OutboundMail
from servicecycle.config import get_settings
from tests.channels.test_email_out import Inbox, free_port
from tests.channels.test_listener import running, send
from tests.factories import Token

Sessions = async_sessionmaker[AsyncSession]
MakeToken = Callable[..., Awaitable[Token]]
DESK = get_settings().mail_from  # the desk's address, as the process is configured


@pytest.fixture
def outgoing() -> Iterator[tuple[Inbox, outbox.SmtpSettings]]:
    """The SMTP server the desk hands its mail to (a smarthost, as far as the desk knows)."""
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
            sender=DESK,
        ),
    )
    controller.stop()


def customer_mail(
    subject: str, body: str, *, sender: str = "Dana Fox <dana@example.com>", **headers: str
) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "help@desk.example", subject
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


async def inbound(db: AsyncSession, message_id: str) -> InboundMail:
    return (await db.scalars(select(InboundMail).where(InboundMail.message_id == message_id))).one()


async def test_a_conversation_by_mail_threads_both_ways(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: Sessions,
    db: AsyncSession,
    outgoing: tuple[Inbox, outbox.SmtpSettings],
) -> None:
    inbox, smtp = outgoing
    agent = await make_token("agent")
    async with running(sessions) as listener:
        # 1. the customer writes: a ticket, and an acknowledgement that answers their mail
        await send(
            listener,
            customer_mail("Parcel missing", "Order 5521 never came", Message_ID="<r1@example.com>"),
        )
        ticket_id = (await inbound(db, "<r1@example.com>")).ticket_id
        assert ticket_id is not None
        assert await outbox.deliver(sessions, smtp) == (1, 0)
        ack = inbox.mails[-1]
        assert (ack["To"], ack["From"]) == ("dana@example.com", DESK)
        assert ack["Subject"] == f"[#{ticket_id}] Parcel missing"
        assert ack["In-Reply-To"] == "<r1@example.com>" == ack["References"]
        assert ack["Auto-Submitted"] == "auto-replied"
        assert "We will reply" in ack.get_content()

        # 2. the agent answers through the API: the mail answers the customer's, names the
        # whole conversation, and says where answers go
        response = await client.post(
            f"/api/v1/tickets/{ticket_id}/messages",
            headers=agent.headers,
            json={"kind": "reply", "body": "It arrives tomorrow."},
        )
        assert response.status_code == 201, response.text
        assert await outbox.deliver(sessions, smtp) == (1, 0)
        reply = inbox.mails[-1]
        row = (
            await db.scalars(
                select(OutboundMail).where(
                    OutboundMail.ticket_id == ticket_id, OutboundMail.kind == "reply"
                )
            )
        ).one()
        assert reply["Message-ID"] == row.message_id and row.status == "sent"
        assert reply["Subject"] == f"Re: [#{ticket_id}] Parcel missing"
        assert reply["In-Reply-To"] == "<r1@example.com>"
        assert reply["References"].split() == ["<r1@example.com>", ack["Message-ID"]]
        local, _, domain = DESK.partition("@")
        assert reply["Reply-To"] == f"{local}+t{ticket_id}@{domain}"
        assert "It arrives tomorrow." in reply.get_content()

        # 3. the customer answers the agent's mail, as a mail client would
        await send(
            listener,
            customer_mail(
                "Re: Parcel missing",
                "Thank you!\n\n> It arrives tomorrow.",
                sender="dana@example.com",
                Message_ID="<r2@example.com>",
                In_Reply_To=reply["Message-ID"],
                References=" ".join([*reply["References"].split(), reply["Message-ID"]]),
            ),
            to=reply["Reply-To"],
        )
        answer = await inbound(db, "<r2@example.com>")
        assert (answer.outcome, answer.ticket_id) == ("reply", ticket_id)

        # 4. the next agent reply carries the conversation on
        await client.post(
            f"/api/v1/tickets/{ticket_id}/messages",
            headers=agent.headers,
            json={"kind": "reply", "body": "You are welcome."},
        )
        assert await outbox.deliver(sessions, smtp) == (1, 0)
        second = inbox.mails[-1]
        assert second["In-Reply-To"] == "<r2@example.com>"
        assert second["References"].split() == [
            "<r1@example.com>",
            ack["Message-ID"],
            reply["Message-ID"],
            "<r2@example.com>",
        ]

    thread = (
        await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers)
    ).json()
    assert [m["body_text"].splitlines()[0] for m in thread] == [
        "Order 5521 never came",
        "It arrives tomorrow.",
        "Thank you!",
        "You are welcome.",
    ]
    assert len({mail["Message-ID"] for mail in inbox.mails}) == len(inbox.mails) == 3


async def test_a_stranger_answering_the_desks_mail_opens_a_new_linked_ticket(
    client: AsyncClient,
    make_token: MakeToken,
    sessions: Sessions,
    db: AsyncSession,
    outgoing: tuple[Inbox, outbox.SmtpSettings],
) -> None:
    inbox, smtp = outgoing
    agent = await make_token("agent")
    async with running(sessions) as listener:
        await send(listener, customer_mail("My invoice", "wrong total", Message_ID="<o1@x.com>"))
        owner = await inbound(db, "<o1@x.com>")
        await outbox.deliver(sessions, smtp)
        desk_mail: Message = inbox.mails[-1]
        # every threading hint points at the owner's ticket, but the sender is someone else
        await send(
            listener,
            customer_mail(
                f"Re: [#{owner.ticket_id}] My invoice",
                "show me their invoice",
                sender="mallory@example.net",
                Message_ID="<m1@example.net>",
                In_Reply_To=desk_mail["Message-ID"],
                References=desk_mail["Message-ID"],
            ),
            sender="mallory@example.net",
            to=desk_mail["Reply-To"],
        )
    intruder = await inbound(db, "<m1@example.net>")
    assert intruder.outcome == "ticket" and intruder.ticket_id != owner.ticket_id
    assert "not a participant" in (intruder.reason or "")
    owners = (
        await client.get(f"/api/v1/tickets/{owner.ticket_id}/messages", headers=agent.headers)
    ).json()
    assert [m["body_text"] for m in owners] == ["wrong total"]
    links = (
        await client.get(f"/api/v1/tickets/{intruder.ticket_id}/relations", headers=agent.headers)
    ).json()
    assert links["links"] == [{"ticket_id": owner.ticket_id, "kind": "related"}]
    # the stranger's acknowledgement names their own ticket, not the owner's
    await outbox.deliver(sessions, smtp)
    assert inbox.mails[-1]["To"] == "mallory@example.net"
    assert (
        inbox.mails[-1]["Subject"] == f"[#{intruder.ticket_id}] Re: [#{owner.ticket_id}] My invoice"
    )
