"""The follow-ups pages: the due queue, one follow-up's actions, planning, settings."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor
from servicecycle.followups import service
from servicecycle.followups.models import FollowUp
from servicecycle.tickets.models import Message
from tests.factories import sign_in
from tests.followups.conftest import Frozen, at

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}
SYSTEM = Actor.system("test")


async def plan(db: AsyncSession, ticket: Any, owner: int | None, **due: float) -> FollowUp:
    follow_up = await service.create(
        db, ticket_id=ticket.id, owner_id=owner, reason="Router ok?", due_at=at(**due), actor=SYSTEM
    )
    await db.commit()
    return follow_up


async def test_the_queue_shows_mine_with_overdue_in_red_and_everyone_s(
    client: AsyncClient, db: AsyncSession, make_user: Make, make_ticket: Make, frozen: Frozen
) -> None:
    agent, other = await make_user("agent"), await make_user("agent")
    csrf = await sign_in(client, agent.email)
    assert csrf
    ticket = await make_ticket()
    late = await plan(db, ticket, agent.id, hours=-3)
    await plan(db, ticket, agent.id, hours=5)
    theirs = await plan(db, ticket, other.id, hours=1)
    unowned = await plan(db, ticket, None, days=2)

    page = (await client.get("/follow-ups", headers=HTML)).text
    rows = re.findall(r'data-follow-up="(\d+)"', page)
    assert rows[0] == str(late.id) and len(rows) == 2
    assert "data-overdue-count>1 overdue" in page and "3 h overdue" in page
    assert "1 due today" in page and f'href="/tickets/{ticket.id}"' in page

    everyone = (await client.get("/follow-ups?tab=all", headers=HTML)).text
    assert {str(theirs.id), str(unowned.id)} <= set(re.findall(r'data-follow-up="(\d+)"', everyone))
    assert "Nobody yet" in everyone
    overdue = (await client.get("/follow-ups?tab=all&overdue=1", headers=HTML)).text
    assert re.findall(r'data-follow-up="(\d+)"', overdue) == [str(late.id)]


async def test_check_in_done_reschedule_and_cancel_from_the_page(
    client: AsyncClient, db: AsyncSession, make_user: Make, make_ticket: Make, frozen: Frozen
) -> None:
    agent = await make_user("agent", name="Alex Kim")
    csrf = await sign_in(client, agent.email)
    ticket = await make_ticket(channel="web")
    follow_up = await plan(db, ticket, agent.id, days=1)
    url = f"/follow-ups/{follow_up.id}"

    page = (await client.get(url, headers=HTML)).text
    assert f"#{ticket.id}" in page and "Best regards,\nAlex" in page

    sent = await client.post(
        f"{url}/check-in", data={"csrf_token": csrf, "body": "Hello again, all well?"}, headers=HTML
    )
    assert sent.status_code == 303
    bodies = (
        await db.scalars(select(Message.body_text).where(Message.ticket_id == ticket.id))
    ).all()
    assert bodies[-1] == "Hello again, all well?"

    missing = await client.post(f"{url}/done", data={"csrf_token": csrf}, headers=HTML)
    assert missing.status_code == 422 and "outcome" in missing.text
    moved = await client.post(
        f"{url}/reschedule",
        data={"csrf_token": csrf, "due": "2026-12-20T09:30", "owner_id": ""},
        headers=HTML,
    )
    assert moved.status_code == 303
    await db.refresh(follow_up)
    assert follow_up.due_at == at(days=18, minutes=-30) and follow_up.owner_id is None
    done = await client.post(
        f"{url}/done", data={"csrf_token": csrf, "outcome": "resolved", "note": "ok"}, headers=HTML
    )
    assert done.status_code == 303
    after = (await client.get(url, headers=HTML)).text
    assert "data-outcome>Resolved" in after and "Follow-up done" in after
    refused = await client.post(f"{url}/cancel", data={"csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 409


async def test_plan_a_follow_up_from_a_ticket(
    client: AsyncClient, db: AsyncSession, make_user: Make, make_ticket: Make, frozen: Frozen
) -> None:
    agent = await make_user("agent")
    csrf = await sign_in(client, agent.email)
    ticket = await make_ticket()
    form = (await client.get(f"/follow-ups/new?ticket={ticket.id}", headers=HTML)).text
    assert f'name="ticket_id" value="{ticket.id}"' in form
    empty = await client.post(
        "/follow-ups/new",
        data={
            "csrf_token": csrf,
            "ticket_id": str(ticket.id),
            "reason": "",
            "due": "2026-12-05T09:00",
        },
        headers=HTML,
    )
    assert empty.status_code == 422 and "reason" in empty.text
    made = await client.post(
        "/follow-ups/new",
        data={
            "csrf_token": csrf,
            "ticket_id": str(ticket.id),
            "owner_id": str(agent.id),
            "kind": "check_in",
            "reason": "Did the refund arrive?",
            "due": "2026-12-05T09:00",
        },
        headers=HTML,
    )
    assert made.status_code == 303
    created = (await db.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket.id))).one()
    assert created.reason == "Did the refund arrive?" and created.due_at == at(days=3, hours=-1)


async def test_analysts_are_refused_and_every_post_needs_the_csrf_token(
    client: AsyncClient, db: AsyncSession, make_user: Make, make_ticket: Make
) -> None:
    analyst = await make_user("analyst")
    await sign_in(client, analyst.email)
    assert (await client.get("/follow-ups", headers=HTML)).status_code == 403
    assert (await client.get("/follow-ups/settings", headers=HTML)).status_code == 403

    agent = await make_user("agent")
    await sign_in(client, agent.email)
    follow_up = await plan(db, await make_ticket(), agent.id, days=1)
    for path, data in (
        ("/follow-ups/new", {"reason": "x", "due": "2026-12-05T09:00"}),
        (f"/follow-ups/{follow_up.id}/check-in", {"body": "hi"}),
        (f"/follow-ups/{follow_up.id}/done", {"outcome": "resolved"}),
        (f"/follow-ups/{follow_up.id}/reschedule", {"due": "2026-12-05T09:00"}),
        (f"/follow-ups/{follow_up.id}/cancel", {}),
    ):
        forged = await client.post(path, data={**data, "csrf_token": "forged"}, headers=HTML)
        assert forged.status_code == 403, path
        assert (await client.post(path, data=data, headers=HTML)).status_code == 403, path
    assert (await client.get("/follow-ups/settings", headers=HTML)).status_code == 403


async def test_admins_set_the_recovery_hours_and_see_the_rate(
    client: AsyncClient, make_user: Make
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    page = (await client.get("/follow-ups/settings", headers=HTML)).text
    assert 'value="24"' in page and "{{customer.first_name}}" in page
    bad = await client.post(
        "/follow-ups/settings",
        data={"csrf_token": csrf, "recovery_hours": "6", "check_in_template": "{{nope}}"},
        headers=HTML,
    )
    assert bad.status_code == 422 and "check_in_template" in bad.text
    saved = await client.post(
        "/follow-ups/settings",
        data={"csrf_token": csrf, "recovery_hours": "6", "check_in_template": ""},
        headers=HTML,
    )
    assert saved.status_code == 303
    assert 'value="6"' in (await client.get("/follow-ups/settings", headers=HTML)).text


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncClient) -> None:
    for path in (
        "/follow-ups",
        "/follow-ups/1",
        "/follow-ups/new?ticket=1",
        "/follow-ups/settings",
    ):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303, path


async def test_the_customer_s_timeline_shows_follow_ups_with_and_without_a_ticket(
    client: AsyncClient, db: AsyncSession, make_user: Make, make_ticket: Make, make_customer: Make
) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    customer = await make_customer()
    ticket = await make_ticket(requester=customer)
    await plan(db, ticket, agent.id, days=1)
    alone = await service.create(
        db, customer_id=customer.id, reason="Renewal call", due_at=at(days=30), actor=SYSTEM
    )
    await service.cancel(db, alone, actor=SYSTEM)
    await db.commit()
    page = (await client.get(f"/customers/{customer.id}", headers=HTML)).text
    kinds = re.findall(r'data-kind="(follow_up\.[a-z_]+)"', page)
    assert kinds == [
        "follow_up.cancelled",
        "follow_up.created",
        "follow_up.created",
    ]  # newest first
