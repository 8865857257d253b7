from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import service as events
from tests.factories import Token

Make = Callable[..., Awaitable[Any]]


async def test_bulk_assign_status_and_tags_one_event_per_ticket(
    client: AsyncClient,
    make_token: Callable[..., Awaitable[Token]],
    make_ticket: Make,
    db: AsyncSession,
) -> None:
    agent = await make_token("agent")
    first, second = await make_ticket(tags=["old"]), await make_ticket()
    response = await client.post(
        "/api/v1/tickets/bulk",
        headers=agent.headers,
        json={
            "ids": [first.id, second.id],
            "changes": {"status": "pending", "assignee_id": agent.user.id},
            "add_tags": ["Batch"],
            "remove_tags": ["old"],
        },
    )
    assert response.status_code == 200, response.text
    assert [(t["status"], t["assignee_id"], t["tags"]) for t in response.json()] == [
        ("pending", agent.user.id, ["batch"]),
        ("pending", agent.user.id, ["batch"]),
    ]
    for ticket in (first, second):
        kinds = [
            e.kind
            for e in (await events.query(db, subject_type="ticket", subject_id=ticket.id)).items
        ]
        assert kinds.count("status.changed") == 1 and kinds.count("assigned") == 1


async def test_bulk_is_all_or_nothing(
    client: AsyncClient, make_token: Callable[..., Awaitable[Token]], make_ticket: Make
) -> None:
    agent = await make_token("agent")
    good = await make_ticket()
    solved = await make_ticket()
    await client.patch(
        f"/api/v1/tickets/{solved.id}",
        headers=agent.headers,
        json={"status": "solved", "version": 1},
    )
    refused = await client.post(
        "/api/v1/tickets/bulk",
        headers=agent.headers,
        json={"ids": [good.id, solved.id], "changes": {"status": "pending"}},
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["ticket_id"] == solved.id and "No ticket was changed" in error["message"]
    unchanged = (await client.get(f"/api/v1/tickets/{good.id}", headers=agent.headers)).json()
    assert unchanged["status"] == "new"
    missing = await client.post(
        "/api/v1/tickets/bulk",
        headers=agent.headers,
        json={"ids": [good.id, 99999999], "changes": {"priority": "high"}},
    )
    assert missing.status_code == 404
    nothing = await client.post(
        "/api/v1/tickets/bulk", headers=agent.headers, json={"ids": [good.id]}
    )
    assert nothing.status_code == 422
