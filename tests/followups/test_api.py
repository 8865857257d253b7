"""The follow-ups REST API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.factories import Token
from tests.followups.conftest import Frozen, at

Make = Callable[..., Awaitable[Any]]
MakeToken = Callable[..., Awaitable[Token]]


async def test_plan_list_reschedule_and_close_the_loop(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make, frozen: Frozen
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket()
    created = await client.post(
        "/api/v1/follow-ups",
        headers=agent.headers,
        json={
            "ticket_id": ticket.id,
            "owner_id": agent.user.id,
            "reason": "Check the new router",
            "due_at": at(hours=-1).isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["customer_id"] == ticket.requester_id and body["overdue"] is True
    assert created.headers["Location"] == f"/api/v1/follow-ups/{body['id']}"

    mine = await client.get(
        "/api/v1/follow-ups", params={"owner": "me", "overdue": "true"}, headers=agent.headers
    )
    assert [f["id"] for f in mine.json()["items"]] == [body["id"]]
    counts = await client.get("/api/v1/follow-ups/counts?owner=me", headers=agent.headers)
    assert counts.json() == {"overdue": 1, "due_today": 0, "open": 1}

    url = f"/api/v1/follow-ups/{body['id']}"
    stale = await client.patch(
        url, headers={**agent.headers, "If-Match": '"9"'}, json={"due_at": at(days=1).isoformat()}
    )
    assert stale.status_code == 412
    no_version = await client.patch(url, headers=agent.headers, json={"reason": "x"})
    assert no_version.status_code == 428
    moved = await client.patch(
        url, headers={**agent.headers, "If-Match": '"1"'}, json={"due_at": at(days=1).isoformat()}
    )
    assert moved.status_code == 200 and moved.json()["overdue"] is False
    assert moved.headers["ETag"] == '"2"'

    missing = await client.post(f"{url}/done", headers=agent.headers, json={})
    assert missing.status_code == 422
    assert "outcome" in missing.json()["error"]["fields"]
    done = await client.post(
        f"{url}/done", headers=agent.headers, json={"outcome": "resolved", "note": "Works"}
    )
    assert done.status_code == 200 and done.json()["state"] == "done"
    again = await client.post(f"{url}/cancel", headers=agent.headers)
    assert again.status_code == 409
    history = await client.get(
        "/api/v1/follow-ups", params={"ticket": ticket.id, "state": "any"}, headers=agent.headers
    )
    assert [f["outcome"] for f in history.json()["items"]] == ["resolved"]


async def test_refusals(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make, make_user: Make
) -> None:
    agent, analyst = await make_token("agent"), await make_token("analyst")
    inactive_owner = await make_user("analyst")
    ticket = await make_ticket()
    plan = {"ticket_id": ticket.id, "reason": "Call", "due_at": at(days=1).isoformat()}

    assert (await client.get("/api/v1/follow-ups/999999", headers=agent.headers)).status_code == 404
    forbidden = await client.post("/api/v1/follow-ups", headers=analyst.headers, json=plan)
    assert forbidden.status_code == 403
    assert (await client.post("/api/v1/follow-ups", json=plan)).status_code == 401
    bad_owner = await client.post(
        "/api/v1/follow-ups", headers=agent.headers, json={**plan, "owner_id": inactive_owner.id}
    )
    assert bad_owner.status_code == 422 and "owner_id" in bad_owner.json()["error"]["fields"]
    naive = await client.post(
        "/api/v1/follow-ups", headers=agent.headers, json={**plan, "due_at": "2026-12-03T09:00:00"}
    )
    assert naive.status_code == 422 and "due_at" in naive.json()["error"]["fields"]
    nobody = await client.post(
        "/api/v1/follow-ups",
        headers=agent.headers,
        json={"reason": "Call", "due_at": at(days=1).isoformat()},
    )
    assert nobody.status_code == 422 and "customer_id" in nobody.json()["error"]["fields"]
    bad_owner_filter = await client.get("/api/v1/follow-ups?owner=bob", headers=agent.headers)
    assert bad_owner_filter.status_code == 422
    bad_cursor = await client.get("/api/v1/follow-ups?cursor=nonsense", headers=agent.headers)
    assert bad_cursor.status_code == 422


async def test_settings_are_for_admins_and_the_template_is_checked(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    read = await client.get("/api/v1/follow-ups/settings", headers=agent.headers)
    assert read.json()["recovery_hours"] == 24 and read.json()["check_in_template"] == ""
    change = {"recovery_hours": 4, "check_in_template": "Hi {{customer.first_name}}"}
    assert (
        await client.put("/api/v1/follow-ups/settings", headers=agent.headers, json=change)
    ).status_code == 403
    saved = await client.put("/api/v1/follow-ups/settings", headers=admin.headers, json=change)
    assert saved.status_code == 200 and saved.json()["recovery_hours"] == 4
    unknown = await client.put(
        "/api/v1/follow-ups/settings",
        headers=admin.headers,
        json={"recovery_hours": 4, "check_in_template": "Hi {{customer.shoe_size}}"},
    )
    assert unknown.status_code == 422 and "check_in_template" in unknown.json()["error"]["fields"]
    too_long = await client.put(
        "/api/v1/follow-ups/settings", headers=admin.headers, json={"recovery_hours": 0}
    )
    assert too_long.status_code == 422


async def test_the_api_is_described_with_examples(client: AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/follow-ups",
        "/api/v1/follow-ups/{follow_up_id}/done",
        "/api/v1/follow-ups/{follow_up_id}/check-in",
        "/api/v1/follow-ups/recovery",
        "/api/v1/follow-ups/settings",
    ):
        assert path in spec["paths"]
    create = spec["components"]["schemas"]["FollowUpCreate"]["properties"]
    assert create["reason"]["examples"] == ["Check the replacement router works"]
