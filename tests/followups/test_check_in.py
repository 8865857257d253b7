"""One click sends a templated check-in; the customer's answer threads into the ticket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.events.models import Event
from tests.channels.test_email_intake import deliver, mail
from tests.channels.test_email_out import Inbox
from tests.channels.test_email_out import smtp as smtp  # the fixture: a real SMTP server
from tests.factories import Token
from tests.followups.conftest import at

MakeToken = Callable[..., Awaitable[Token]]
Make = Callable[..., Awaitable[Any]]


async def test_a_check_in_is_mailed_keeps_the_ticket_solved_and_the_answer_reopens_it(
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
        mail("Dana Fox <dana@example.com>", "Router dead", "No lights", Message_ID="<r1@ex.com>"),
    )
    ticket_id = first["ticket_id"]
    solved = await client.patch(
        f"/api/v1/tickets/{ticket_id}",
        headers={**agent.headers, "If-Match": '"1"'},
        json={"status": "solved"},
    )
    assert solved.status_code == 200, solved.text
    assert await outbox.deliver(sessions, settings) == (1, 0)  # the acknowledgement

    plan = await client.post(
        "/api/v1/follow-ups",
        headers=agent.headers,
        json={
            "ticket_id": ticket_id,
            "kind": "check_in",
            "reason": "Router ok?",
            "due_at": at().isoformat(),
        },
    )
    url = f"/api/v1/follow-ups/{plan.json()['id']}/check-in"
    preview = await client.get(url, headers=agent.headers)
    assert preview.json()["body"].startswith("Hi Dana,")
    assert f"#{ticket_id} (Router dead)" in preview.json()["body"]
    assert agent.user.name.split(" ")[0] in preview.json()["body"]

    sent = await client.post(url, headers=agent.headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["follow_up"]["sent_at"] is not None
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)).json()
    assert ticket["status"] == "solved"  # a check-in does not reopen it
    async with sessions() as session:
        queued = (
            await session.scalars(
                select(OutboundMail).where(
                    OutboundMail.ticket_id == ticket_id, OutboundMail.kind == "reply"
                )
            )
        ).one()
        kinds = list(
            (
                await session.scalars(
                    select(Event.kind)
                    .where(Event.subject_type == "ticket", Event.subject_id == str(ticket_id))
                    .order_by(Event.id)
                )
            ).all()
        )
    assert queued.status == "queued"
    assert kinds[-2:] == ["mail.queued", "follow_up.check_in_sent"]

    assert await outbox.deliver(sessions, settings) == (1, 0)
    check_in = inbox.mails[-1]
    assert "Is everything working" in check_in.get_content()
    answer = EmailMessage()
    answer["From"], answer["To"] = "dana@example.com", check_in["Reply-To"]
    answer["Subject"], answer["Message-ID"] = "Re: Router", "<r2@ex.com>"
    answer["In-Reply-To"] = check_in["Message-ID"]
    answer.set_content("It died again this morning.")
    threaded = await deliver(client, agent, answer.as_bytes())
    assert threaded["outcome"] == "reply" and threaded["ticket_id"] == ticket_id
    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)).json()
    assert ticket["status"] == "open"  # the customer's answer reopens it, as any answer does


async def test_a_check_in_needs_an_open_follow_up_on_a_ticket_that_is_not_closed(
    client: AsyncClient, make_token: MakeToken, make_customer: Make
) -> None:
    agent = await make_token("agent")
    customer = await make_customer()
    plan = await client.post(
        "/api/v1/follow-ups",
        headers=agent.headers,
        json={"customer_id": customer.id, "reason": "Renewal", "due_at": at().isoformat()},
    )
    response = await client.post(
        f"/api/v1/follow-ups/{plan.json()['id']}/check-in", headers=agent.headers
    )
    assert response.status_code == 409 and "ticket_id" in response.json()["error"]["fields"]
