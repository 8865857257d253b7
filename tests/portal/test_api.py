"""The portal's REST API: links, customer tokens, own requests only, public threads only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from servicecycle.events.service import Actor
from servicecycle.tickets import service as tickets
from tests.factories import Token
from tests.portal.conftest import Sessions, links_sent

MakeCustomer = Callable[..., Awaitable[Any]]
MakeTicket = Callable[..., Awaitable[Any]]
MakeToken = Callable[..., Awaitable[Token]]


async def _customer_token(client: AsyncClient, sessions: Sessions, email: str) -> dict[str, str]:
    asked = await client.post("/api/v1/portal/magic-links", json={"email": email})
    assert asked.status_code == 202 and asked.json() == {"status": "sent_if_known"}
    token = (await links_sent(sessions, email))[-1]
    made = await client.post("/api/v1/portal/sessions", json={"link_token": token})
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("scp_")
    return {"Authorization": f"Bearer {made.json()['token']}"}


async def test_a_headless_portal_signs_in_lists_opens_and_replies(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    me = await make_customer("Lou", email="lou@example.com")
    mine = await make_ticket("Old question", requester=me)
    async with sessions() as session, session.begin():
        loaded = await tickets.get_ticket(session, mine.id)
        await tickets.add_message(
            session,
            loaded,
            public=False,
            author_type="agent",
            body_text="note: refund denied",
            actor=Actor.system("test"),
        )
    await make_ticket("Someone else's", requester=await make_customer())
    headers = await _customer_token(client, sessions, "lou@example.com")

    listed = await client.get("/api/v1/portal/tickets", headers=headers)
    assert [t["subject"] for t in listed.json()] == ["Old question"]
    detail = (await client.get(f"/api/v1/portal/tickets/{mine.id}", headers=headers)).json()
    assert [m["body_text"] for m in detail["messages"]] == ["It is late."]

    made = await client.post(
        "/api/v1/portal/tickets",
        headers=headers,
        json={"subject": "New one", "description": "Please help"},
    )
    assert made.status_code == 201 and made.json()["channel"] == "portal"
    replied = await client.post(
        f"/api/v1/portal/tickets/{mine.id}/replies", headers=headers, json={"body": "Any news?"}
    )
    assert replied.status_code == 201
    assert [m["author"] for m in replied.json()["messages"]] == ["customer", "customer"]

    out = await client.delete("/api/v1/portal/sessions/current", headers=headers)
    assert out.status_code == 204
    assert (await client.get("/api/v1/portal/tickets", headers=headers)).status_code == 401


async def test_other_customers_requests_are_404_without_their_data(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    await make_customer(email="a@example.com")
    theirs = await make_ticket("Private thing", requester=await make_customer("Quinn"))
    headers = await _customer_token(client, sessions, "a@example.com")
    for method, url, body in (
        ("GET", f"/api/v1/portal/tickets/{theirs.id}", None),
        ("POST", f"/api/v1/portal/tickets/{theirs.id}/replies", {"body": "hi"}),
    ):
        response = await client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404
        assert "Private" not in response.text and "Quinn" not in response.text


async def test_tokens_do_not_cross_between_agents_and_customers(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_token: MakeToken
) -> None:
    await make_customer(email="c@example.com")
    customer = await _customer_token(client, sessions, "c@example.com")
    agent = await make_token("agent")
    assert (await client.get("/api/v1/tickets", headers=customer)).status_code == 401
    assert (await client.get("/api/v1/portal/tickets", headers=agent.headers)).status_code == 401
    assert (await client.get("/api/v1/portal/tickets")).status_code == 401


async def test_a_link_token_works_once_and_bad_input_is_named(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer(email="once@example.com")
    await client.post("/api/v1/portal/magic-links", json={"email": "once@example.com"})
    [token] = await links_sent(sessions, "once@example.com")
    assert (
        await client.post("/api/v1/portal/sessions", json={"link_token": token})
    ).status_code == 201
    replay = await client.post("/api/v1/portal/sessions", json={"link_token": token})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "unauthenticated"
    empty = await client.post("/api/v1/portal/sessions", json={})
    assert empty.status_code == 422 and "link_token" in empty.json()["error"]["fields"]
    wrong = await client.post(
        "/api/v1/portal/sessions", json={"email": "once@example.com", "password": "nope nope nope"}
    )
    assert wrong.status_code == 401
    headers = await _customer_token(client, sessions, "once@example.com")
    unknown = await client.post(
        "/api/v1/portal/tickets",
        headers=headers,
        json={"subject": "x", "description": "y", "custom": {"nope": 1}},
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"] == {
        "custom.nope": "no such field"
    }


async def test_magic_links_are_rate_limited(client: AsyncClient) -> None:
    codes = [
        (
            await client.post("/api/v1/portal/magic-links", json={"email": "z@example.com"})
        ).status_code
        for _ in range(4)
    ]
    assert codes == [202, 202, 202, 429]


async def test_the_api_reference_names_the_customer_token(client: AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    assert "scp_" in doc["components"]["securitySchemes"]["CustomerToken"]["description"]
    assert doc["paths"]["/api/v1/portal/tickets"]["get"]["security"] == [{"CustomerToken": []}]


async def test_files_are_uploaded_then_claimed_by_their_uploader_only(
    app: Any, client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    from sqlalchemy import func, select

    from servicecycle.tickets.models import Attachment

    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"max_attachment_bytes": 1000})
    await make_customer(email="up@example.com")
    await make_customer(email="thief@example.com")
    mine = await _customer_token(client, sessions, "up@example.com")
    thief = await _customer_token(client, sessions, "thief@example.com")

    too_big = await client.post(
        "/api/v1/portal/uploads", headers=mine, files={"file": ("big.txt", b"x" * 1001)}
    )
    assert (
        too_big.status_code == 413
        and "larger than 1,000 bytes" in too_big.json()["error"]["message"]
    )
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0

    up = await client.post(
        "/api/v1/portal/uploads",
        headers=mine,
        files={"file": ("receipt.txt", b"paid in full", "text/plain")},
    )
    assert up.status_code == 201 and up.json()["filename"] == "receipt.txt"
    file_id = up.json()["id"]

    stolen = await client.post(
        "/api/v1/portal/tickets",
        headers=thief,
        json={"subject": "Mine now", "description": "x", "attachment_ids": [file_id]},
    )
    assert stolen.status_code == 422 and stolen.json()["error"]["fields"] == {
        "attachment_ids": str(file_id)
    }
    made = await client.post(
        "/api/v1/portal/tickets",
        headers=mine,
        json={"subject": "Refund", "description": "See receipt", "attachment_ids": [file_id]},
    )
    assert made.status_code == 201, made.text
    ticket = made.json()
    assert [f["filename"] for f in ticket["messages"][0]["files"]] == ["receipt.txt"]
    again = await client.post(
        f"/api/v1/portal/tickets/{ticket['id']}/replies",
        headers=mine,
        json={"body": "again", "attachment_ids": [file_id]},
    )
    assert again.status_code == 422  # already sent
    got = await client.get(f"/api/v1/portal/tickets/{ticket['id']}/files/{file_id}", headers=mine)
    assert got.status_code == 200 and got.content == b"paid in full"
    refused = await client.get(
        f"/api/v1/portal/tickets/{ticket['id']}/files/{file_id}", headers=thief
    )
    assert refused.status_code == 404 and b"paid" not in refused.content
