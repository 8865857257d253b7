from __future__ import annotations

from collections.abc import Awaitable, Callable

from httpx import AsyncClient

from tests.factories import Token


async def test_admins_set_standards_and_agents_see_a_tickets_clocks(
    client: AsyncClient, make_token: Callable[..., Awaitable[Token]]
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    week = {str(d): [["00:00", "24:00"]] for d in range(7)}
    refused = await client.post(
        "/api/v1/calendars",
        headers=agent.headers,
        json={"name": "24/7", "zone": "UTC", "week": week},
    )
    assert refused.status_code == 403
    calendar = await client.post(
        "/api/v1/calendars",
        headers=admin.headers,
        json={"name": "24/7", "zone": "UTC", "week": week},
    )
    assert calendar.status_code == 201, calendar.text
    empty = await client.post(
        "/api/v1/calendars",
        headers=admin.headers,
        json={"name": "Never", "zone": "UTC", "week": {}},
    )
    assert empty.status_code == 422 and "week" in empty.json()["error"]["fields"]
    policy = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={
            "name": "Everyone",
            "calendar_id": calendar.json()["id"],
            "targets": {
                "first_reply": {"minutes": 60, "business": True},
                "resolution": {"minutes": 1440, "business": True},
            },
        },
    )
    assert policy.status_code == 201, policy.text
    bad = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={
            "name": "Bad",
            "targets": {"first_reply": {"minutes": 60, "business": False, "x": 1}},
        },
    )
    assert bad.status_code == 422 and "targets.first_reply" in bad.json()["error"]["fields"]
    ticket = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={"subject": "Help", "requester": {"email": "sla@example.com"}, "body": "please"},
    )
    clocks = (
        await client.get(f"/api/v1/tickets/{ticket.json()['id']}/sla", headers=agent.headers)
    ).json()
    assert sorted((c["metric"], c["state"], c["target_minutes"]) for c in clocks) == [
        ("first_reply", "running", 60),
        ("resolution", "running", 1440),
    ]
    renamed = await client.patch(
        f"/api/v1/sla-policies/{policy.json()['id']}",
        headers=admin.headers,
        json={"active": False, "version": 1},
    )
    assert renamed.status_code == 200 and renamed.json()["active"] is False


async def test_the_due_queue_lists_soonest_first_and_breaches(
    client: AsyncClient, make_token: Callable[..., Awaitable[Token]]
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={"name": "Clock time", "targets": {"first_reply": {"minutes": 30, "business": False}}},
    )
    ids = []
    for subject in ("first", "second"):
        made = await client.post(
            "/api/v1/tickets",
            headers=agent.headers,
            json={
                "subject": subject,
                "requester": {"email": f"{subject}@example.com"},
                "body": "x",
            },
        )
        ids.append(made.json()["id"])
    soon = (
        await client.get("/api/v1/sla/due", headers=agent.headers, params={"within_minutes": 60})
    ).json()
    assert isinstance(soon, list), soon
    assert [c["ticket_id"] for c in soon if c["ticket_id"] in ids] == ids
    none_yet = (
        await client.get("/api/v1/sla/due", headers=agent.headers, params={"within_minutes": 10})
    ).json()
    assert not [c for c in none_yet if c["ticket_id"] in ids]
    breached = (
        await client.get("/api/v1/sla/due", headers=agent.headers, params={"breached": True})
    ).json()
    assert not [c for c in breached if c["ticket_id"] in ids]
