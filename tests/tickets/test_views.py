from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
Make = Callable[..., Awaitable[Any]]


async def test_saved_views_count_list_and_stay_private(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent, other, admin = (
        await make_token("agent"),
        await make_token("agent"),
        await make_token("admin"),
    )
    urgent = await make_ticket("Fire", priority="urgent", tags=["vip"])
    await make_ticket("Calm", priority="low", tags=["vip"])
    made = await client.post(
        "/api/v1/views",
        headers=agent.headers,
        json={
            "name": "Urgent VIP",
            "filters": {"priority": "urgent", "tag": "vip", "statuses": ["new", "open"]},
        },
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert made.json()["count"] == 1 and made.json()["shared"] is False
    listed = await client.get("/api/v1/tickets", headers=agent.headers, params={"view": key})
    assert [t["id"] for t in listed.json()["items"]] == [urgent.id]
    assert key in {
        v["key"] for v in (await client.get("/api/v1/views", headers=agent.headers)).json()
    }
    assert key not in {
        v["key"] for v in (await client.get("/api/v1/views", headers=other.headers)).json()
    }
    hidden = await client.get("/api/v1/tickets", headers=other.headers, params={"view": key})
    assert hidden.status_code == 404
    shared = await client.post(
        "/api/v1/views", headers=agent.headers, json={"name": "All", "filters": {}, "shared": True}
    )
    assert shared.status_code == 403
    team_view = await client.post(
        "/api/v1/views",
        headers=admin.headers,
        json={"name": "Everything low", "filters": {"priority": "low"}, "shared": True},
    )
    assert team_view.json()["shared"] is True
    assert team_view.json()["key"] in {
        v["key"] for v in (await client.get("/api/v1/views", headers=other.headers)).json()
    }
    bad = await client.post(
        "/api/v1/views", headers=agent.headers, json={"name": "X", "filters": {"colour": "red"}}
    )
    assert bad.status_code == 422 and "filters.colour" in bad.json()["error"]["fields"]
    worse = await client.post(
        "/api/v1/views",
        headers=agent.headers,
        json={"name": "X", "filters": {"statuses": ["frozen"]}},
    )
    assert worse.status_code == 422
    view_id = key.split(":")[1]
    assert (
        await client.delete(f"/api/v1/views/{view_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/views/{view_id}", headers=agent.headers)
    ).status_code == 204


async def test_two_agents_on_one_ticket_see_each_other(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    ana, ben = await make_token("agent"), await make_token("agent")
    ticket = await make_ticket()
    url = f"/api/v1/tickets/{ticket.id}/viewers"
    assert (await client.post(url, headers=ana.headers, json={})).json() == []
    seen = (await client.post(url, headers=ben.headers, json={"replying": True})).json()
    assert seen == [{"user_id": ana.user.id, "name": ana.user.name, "replying": False}]
    warned = (await client.post(url, headers=ana.headers, json={"replying": False})).json()
    assert warned == [{"user_id": ben.user.id, "name": ben.user.name, "replying": True}]


async def test_view_counts_stop_at_the_cap_and_say_so(
    client: AsyncClient,
    make_token: MakeToken,
    make_ticket: Make,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from servicecycle.tickets import service

    monkeypatch.setattr(service, "COUNT_CAP", 3)
    agent = await make_token("agent")
    for n in range(5):
        await make_ticket(f"Waiting {n}", tags=["queue"])
    await make_ticket("Alone", tags=["single"])
    for tag in ("queue", "single"):
        made = await client.post(
            "/api/v1/views", headers=agent.headers, json={"name": tag, "filters": {"tag": tag}}
        )
        assert made.status_code == 201, made.text
    counts = {
        v["name"]: (v["count"], v["count_capped"])
        for v in (await client.get("/api/v1/views", headers=agent.headers)).json()
    }
    assert counts["queue"] == (3, True)
    assert counts["single"] == (1, False)
    assert counts["All open"] == (3, True)
    assert counts["My open"] == (0, False)
    assert service.shown_count(4) == "3+" and service.shown_count(3) == "3"
