from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit.errors import Conflict
from servicecycle.tickets import service as tickets
from servicecycle.tickets.content import body
from servicecycle.tickets.models import Message, Ticket
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
Make = Callable[..., Awaitable[Any]]
AGENT = Actor.user(1)


def test_bodies_are_sanitised_and_get_a_text_twin() -> None:
    safe, text = body(
        markup='<p onclick="x()">Hi <script>alert(1)</script><a href="javascript:x">there</a>'
        '<img src="x" onerror="y"></p><style>p{}</style>'
    )
    assert "<script" not in safe and "onclick" not in safe and "javascript:" not in safe
    assert "onerror" not in safe and "<style" not in safe
    assert text == "Hi there"
    safe, text = body(text="<b>not bold</b>\n\nsecond")
    assert (
        safe == "<p>&lt;b&gt;not bold&lt;/b&gt;</p><p>second</p>"
        and text == "<b>not bold</b>\n\nsecond"
    )


async def test_a_ticket_starts_new_with_its_first_message_and_events(
    db: AsyncSession, make_ticket: Make
) -> None:
    ticket = await make_ticket("Broken zip", body="The zip on my bag broke")
    assert ticket.id >= 1001 and ticket.status == "new" and ticket.priority == "normal"
    kept = await db.get(Ticket, ticket.id)
    assert kept is not None
    messages = await tickets.thread(db, kept)
    assert [(m.author_type, m.public, m.body_text) for m in messages] == [
        ("customer", True, "The zip on my bag broke")
    ]
    log = await events.query(db, subject_type="ticket", subject_id=ticket.id, newest_first=False)
    # the ticket and its first message are logged together; an e-mail ticket from a customer
    # is then acknowledged by mail (queued in the same transaction)
    assert [e.kind for e in log.items] == ["ticket.created", "message.added", "mail.queued"]


async def test_agent_reply_opens_customer_reply_reopens_closed_is_final(
    db: AsyncSession, make_ticket: Make
) -> None:
    ticket = await tickets.get_ticket(db, (await make_ticket()).id)
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="agent",
        author_user_id=None,
        body_text="On its way",
        actor=AGENT,
    )
    assert ticket.status == "open" and ticket.first_reply_at is not None
    await tickets.add_message(
        db,
        ticket,
        public=False,
        author_type="agent",
        body_text="courier late",
        status="solved",
        actor=AGENT,
    )
    assert ticket.status == "solved" and ticket.solved_at is not None
    await tickets.add_message(
        db,
        ticket,
        public=True,
        author_type="customer",
        author_customer_id=ticket.requester_id,
        body_text="Still nothing",
        actor=AGENT,
    )
    assert ticket.status == "open" and ticket.solved_at is None
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"status": "solved"}, actor=AGENT
    )
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"status": "closed"}, actor=AGENT
    )
    with pytest.raises(Conflict) as caught:
        await tickets.add_message(
            db, ticket, public=True, author_type="customer", body_text="hello?", actor=AGENT
        )
    assert caught.value.fields == {"status": "closed is final"}
    kinds = [
        e.data["to"]
        for e in (
            await events.query(
                db,
                subject_type="ticket",
                subject_id=ticket.id,
                kinds=["status.changed"],
                newest_first=False,
            )
        ).items
    ]
    assert kinds == ["open", "solved", "open", "solved", "closed"]


async def test_views_count_and_list(db: AsyncSession, make_ticket: Make, make_user: Make) -> None:
    agent = await make_user("agent")
    mine = await make_ticket("Mine", assignee_id=agent.id)
    loose = await make_ticket("Loose")
    counts = await tickets.count_views(db, user_id=agent.id)
    assert counts["my-open"] == 1 and counts["unassigned"] >= 1
    unassigned = await tickets.list_tickets(db, tickets.view_filter("unassigned", user_id=agent.id))
    ids = [t.id for t in unassigned.items]
    assert loose.id in ids and mine.id not in ids
    my_open = await tickets.list_tickets(db, tickets.view_filter("my-open", user_id=agent.id))
    assert [t.id for t in my_open.items] == [mine.id]


async def test_api_full_round(client: AsyncClient, make_token: MakeToken, db: AsyncSession) -> None:
    agent = await make_token("agent")
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Refund please",
            "requester": {"email": "Rita@example.com", "name": "Rita"},
            "body": "Order 42 arrived broken",
            "channel": "web",
            "tags": ["refund"],
            "priority": "high",
        },
    )
    assert created.status_code == 201, created.text
    number = created.json()["id"]
    assert created.json()["status"] == "new" and created.json()["tags"] == ["refund"]
    url = f"/api/v1/tickets/{number}"
    reply = await client.post(
        f"{url}/messages",
        headers=agent.headers,
        json={"kind": "reply", "body": "Refund sent", "status": "solved"},
    )
    assert reply.status_code == 201 and reply.json()["public"] is True
    note = await client.post(
        f"{url}/messages", headers=agent.headers, json={"kind": "note", "body": "via PSP"}
    )
    assert note.json()["public"] is False
    thread = (await client.get(f"{url}/messages", headers=agent.headers)).json()
    assert [m["body_text"] for m in thread] == ["Order 42 arrived broken", "Refund sent", "via PSP"]
    current = (await client.get(url, headers=agent.headers)).json()
    assert current["status"] == "solved"
    listed = await client.get(
        "/api/v1/tickets",
        headers=agent.headers,
        params={"view": "recently-solved", "tag": "refund"},
    )
    assert [t["id"] for t in listed.json()["items"]] == [number]
    views = {
        v["key"]: v["count"]
        for v in (await client.get("/api/v1/views", headers=agent.headers)).json()
    }
    assert views["recently-solved"] >= 1


async def test_api_refuses_bad_changes_with_reasons(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make, db: AsyncSession
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket()
    url = f"/api/v1/tickets/{ticket.id}"
    closed = await client.patch(url, headers=agent.headers, json={"status": "closed", "version": 1})
    assert closed.status_code == 409
    error = closed.json()["error"]
    assert error["allowed"] == ["open", "pending", "on-hold", "solved"]
    assert "allowed: open, pending, on-hold, solved" in error["fields"]["status"]
    bogus = await client.patch(url, headers=agent.headers, json={"status": "frozen", "version": 1})
    assert bogus.status_code == 422 and "status" in bogus.json()["error"]["fields"]
    unknown = await client.patch(url, headers=agent.headers, json={"colour": "red", "version": 1})
    assert unknown.status_code == 422 and "colour" in unknown.json()["error"]["fields"]
    nobody = await client.patch(
        url, headers=agent.headers, json={"assignee_id": 999999, "version": 1}
    )
    assert nobody.status_code == 422 and "assignee_id" in nobody.json()["error"]["fields"]
    first = await client.patch(
        url, headers=agent.headers, json={"priority": "urgent", "version": 1}
    )
    assert first.status_code == 200
    lost = await client.patch(url, headers=agent.headers, json={"priority": "low", "version": 1})
    assert lost.status_code == 412
    assert (await client.get(url, headers=agent.headers)).json()["priority"] == "urgent"
    empty = await client.post(
        f"{url}/messages", headers=agent.headers, json={"kind": "reply", "body": "  "}
    )
    assert empty.status_code == 422
    count = await db.scalar(
        select(func.count()).select_from(Message).where(Message.ticket_id == ticket.id)
    )
    assert count == 1


async def test_script_never_reaches_the_api_unescaped(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "<script>alert('s')</script>Help",
            "requester": {"email": "x@example.com"},
            "body_html": "<p>hi</p><script>alert('b')</script><img src=x onerror=alert(1)>",
        },
    )
    assert created.status_code == 201
    thread = (
        await client.get(f"/api/v1/tickets/{created.json()['id']}/messages", headers=agent.headers)
    ).json()
    assert "<script" not in thread[0]["body_html"] and "onerror" not in thread[0]["body_html"]


async def test_one_update_moves_the_version_by_exactly_one(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket()
    url = f"/api/v1/tickets/{ticket.id}"
    many = await client.patch(
        url,
        headers=agent.headers,
        json={
            "status": "open",
            "priority": "high",
            "assignee_id": agent.user.id,
            "tags": ["a"],
            "version": 1,
        },
    )
    assert many.json()["version"] == 2
    reply = await client.post(
        f"{url}/messages",
        headers=agent.headers,
        json={"kind": "reply", "body": "hi", "status": "pending", "version": 2},
    )
    assert reply.status_code == 201
    assert (await client.get(url, headers=agent.headers)).json()["version"] == 3
    stale = await client.post(
        f"{url}/messages", headers=agent.headers, json={"kind": "reply", "body": "hi", "version": 2}
    )
    assert stale.status_code == 412


async def test_an_update_that_changes_nothing_keeps_the_version(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket(tags=["a"])
    url = f"/api/v1/tickets/{ticket.id}"
    same = await client.patch(
        url, headers=agent.headers, json={"tags": ["a"], "priority": "normal", "version": 1}
    )
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = await client.patch(
        url, headers=agent.headers, json={"tags": ["a", "b"], "version": 1}
    )
    assert changed.json()["version"] == 2
