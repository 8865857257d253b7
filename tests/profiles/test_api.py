"""GET /api/v1/customers/{id}/profile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.profiles.conftest import START, Story


async def test_the_profile_adds_up(
    client: AsyncClient, make_token: Any, story: Callable[[], Awaitable[Story]]
) -> None:
    found = await story()
    for role in ("agent", "analyst", "admin"):
        token = await make_token(role)
        response = await client.get(
            f"/api/v1/customers/{found.customer.id}/profile", headers=token.headers
        )
        assert response.status_code == 200, response.text
    body = response.json()
    assert [(p["name"], p["value"], p["points"], p["max_points"]) for p in body["parts"]] == [
        ("Feedback", "CSAT 5", 40, 40),
        ("Open tickets", "1 open", 15, 20),
        ("Reopens", "1 reopened", 10, 20),
        ("Waiting", "6.0 h", 12, 20),
    ]
    assert (body["score"], body["segment"], body["name"]) == (77, "promoter", "Ana Lima")
    history = body["history"]
    assert {k: v for k, v in history.items() if k != "latest_answers"} == {
        "tickets_total": 2,
        "tickets_open": 1,
        "tickets_solved": 1,
        "surveys_answered": 1,
        "follow_ups_open": 1,
        "follow_ups_done": 1,
        "first_contact_at": START.isoformat().replace("+00:00", "Z"),
    }
    [answer] = history["latest_answers"]
    assert (answer["kind"], answer["score"], answer["ticket_id"]) == ("csat", 5, found.first.id)


async def test_a_customer_with_nothing_yet(
    client: AsyncClient, make_token: Any, make_customer: Any
) -> None:
    customer = await make_customer("Ben")
    token = await make_token("agent")
    response = await client.get(f"/api/v1/customers/{customer.id}/profile", headers=token.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["score"], body["segment"], body["parts"]) == (None, "unknown", [])
    assert body["history"]["tickets_total"] == 0
    assert body["history"]["first_contact_at"] is None


async def test_who_may_ask_and_unknown_customers(
    client: AsyncClient, make_token: Any, make_customer: Any
) -> None:
    customer = await make_customer()
    anonymous = await client.get(f"/api/v1/customers/{customer.id}/profile")
    assert anonymous.status_code == 401
    token = await make_token("analyst")
    missing = await client.get("/api/v1/customers/999999/profile", headers=token.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_the_route_is_in_the_openapi_doc_with_an_example(client: AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    route = doc["paths"]["/api/v1/customers/{customer_id}/profile"]["get"]
    example = route["responses"]["200"]["content"]["application/json"]["example"]
    assert example["segment"] == "promoter" and len(example["parts"]) == 4
    assert "customers" in route["tags"]
