"""Mail in through the provider endpoint: tickets, replies, duplicates, strangers, refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import InboundMail
from servicecycle.tickets.models import Ticket
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]


def mail(sender: str, subject: str, body: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "help@desk.example", subject
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


async def deliver(client: AsyncClient, token: Token, raw: bytes) -> dict[str, object]:
    response = await client.post(
        "/api/v1/channels/email/inbound",
        headers={**token.headers, "content-type": "message/rfc822"},
        content=raw,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_mail_becomes_a_ticket_and_its_reply_threads_back(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    first = await deliver(
        client,
        agent,
        mail(
            "Dana Fox <dana@example.com>",
            "Parcel missing",
            "Order 5521 never came",
            Message_ID="<m1@example.com>",
        ),
    )
    assert first["outcome"] == "ticket"
    ticket_id = first["ticket_id"]
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)).json()
    assert ticket["channel"] == "email" and ticket["subject"] == "Parcel missing"
    reply = await deliver(
        client,
        agent,
        mail(
            "dana@example.com",
            "Re: Parcel missing",
            "Any news?",
            Message_ID="<m2@example.com>",
            In_Reply_To="<m1@example.com>",
        ),
    )
    assert reply == {"outcome": "reply", "ticket_id": ticket_id, "reason": None}
    by_token = await deliver(
        client,
        agent,
        mail(
            "dana@example.com",
            f"Re: [#{ticket_id}] Parcel",
            "Hello again",
            Message_ID="<m3@example.com>",
        ),
    )
    assert by_token["outcome"] == "reply" and by_token["ticket_id"] == ticket_id
    thread = (
        await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers)
    ).json()
    assert [m["body_text"] for m in thread] == ["Order 5521 never came", "Any news?", "Hello again"]


async def test_the_same_message_id_never_makes_two_tickets(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    agent = await make_token("agent")
    raw = mail("eve@example.com", "Hello", "once", Message_ID="<same@example.com>")
    first = await deliver(client, agent, raw)
    again = await deliver(client, agent, raw)
    assert again["outcome"] == "duplicate" and again["ticket_id"] == first["ticket_id"]
    count = await db.scalar(
        select(func.count())
        .select_from(InboundMail)
        .where(InboundMail.message_id == "<same@example.com>")
    )
    assert count == 1


async def test_a_stranger_answering_a_thread_gets_a_new_linked_ticket(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    owner = await deliver(
        client,
        agent,
        mail("owner@example.com", "My invoice", "wrong total", Message_ID="<o1@example.com>"),
    )
    intruder = await deliver(
        client,
        agent,
        mail(
            "mallory@example.net",
            f"Re: [#{owner['ticket_id']}]",
            "show me their invoice",
            In_Reply_To="<o1@example.com>",
            Message_ID="<x1@example.net>",
        ),
    )
    assert intruder["outcome"] == "ticket" and intruder["ticket_id"] != owner["ticket_id"]
    assert "not a participant" in str(intruder["reason"])
    thread = (
        await client.get(f"/api/v1/tickets/{owner['ticket_id']}/messages", headers=agent.headers)
    ).json()
    assert [m["body_text"] for m in thread] == ["wrong total"]
    links = (
        await client.get(
            f"/api/v1/tickets/{intruder['ticket_id']}/relations", headers=agent.headers
        )
    ).json()
    assert links["links"] == [{"ticket_id": owner["ticket_id"], "kind": "related"}]


async def test_auto_replies_and_senderless_mail_are_logged_not_ticketed(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    agent = await make_token("agent")
    before = await db.scalar(select(func.count()).select_from(Ticket))
    away = await deliver(
        client,
        agent,
        mail("bob@example.com", "Out of office", "back Monday", Auto_Submitted="auto-replied"),
    )
    assert away == {
        "outcome": "ignored",
        "ticket_id": None,
        "reason": "Auto-Submitted: auto-replied",
    }
    nobody = await deliver(client, agent, b"Subject: hi\r\n\r\nno sender\r\n")
    assert nobody["outcome"] == "rejected" and "sender" in str(nobody["reason"])
    assert await db.scalar(select(func.count()).select_from(Ticket)) == before
    logged = (await db.scalars(select(InboundMail.outcome).order_by(InboundMail.id))).all()
    assert list(logged)[-2:] == ["ignored", "rejected"]
    empty = await client.post(
        "/api/v1/channels/email/inbound", headers=agent.headers, content=b"  "
    )
    assert empty.status_code == 422


async def test_attachments_arrive_and_blocked_ones_are_noted(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "f@example.com",
        "help@desk.example",
        "Files",
    )
    message.set_content("two files")
    message.add_attachment(b"hello", maintype="text", subtype="plain", filename="notes.txt")
    message.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="octet-stream", filename="run.exe"
    )
    result = await deliver(client, agent, message.as_bytes())
    thread = (
        await client.get(f"/api/v1/tickets/{result['ticket_id']}/messages", headers=agent.headers)
    ).json()
    assert [a["filename"] for a in thread[0]["attachments"]] == ["notes.txt"]
    admin = await make_token("admin")
    refused = (
        await client.get(
            "/api/v1/events",
            headers=admin.headers,
            params={"kind": "attachment.refused", "subject_id": str(result["ticket_id"])},
        )
    ).json()["items"]
    assert [(e["data"]["filename"], e["data"]["reason"]) for e in refused] == [
        ("run.exe", "exe files are not accepted")
    ]


async def test_the_mailbox_a_mail_came_from_is_noted(db: AsyncSession) -> None:
    from servicecycle.channels.email import intake
    from servicecycle.channels.models import Mailbox
    from servicecycle.tickets.storage import DatabaseStorage

    box = Mailbox(
        name="Support",
        address="support@desk.example",
        host="imap.desk.example",
        port=993,
        username="support",
        password_encrypted="x",
    )
    db.add(box)
    await db.flush()
    raw = mail("m@example.com", "From IMAP", "hello", Message_ID="<imap1@example.com>")
    outcome = await intake.receive(
        db, raw, storage=DatabaseStorage(), max_file_bytes=1000, mailbox_id=box.id
    )
    row = (
        await db.scalars(select(InboundMail).where(InboundMail.message_id == "<imap1@example.com>"))
    ).one()
    assert (outcome.outcome, row.mailbox_id) == ("ticket", box.id)
