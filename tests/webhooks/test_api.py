"""The webhooks REST API: subscriptions, the delivery log, redelivery, the inbound endpoint."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.webhooks import service
from tests.factories import Token
from tests.webhooks.conftest import Receiver, WebhookSettings, check_signature

MakeToken = Callable[..., Awaitable[Token]]
SUBS = "/api/v1/webhooks/subscriptions"


async def _deliver(
    sessions: async_sessionmaker[AsyncSession], settings: WebhookSettings
) -> tuple[int, int]:
    async with sessions() as session, session.begin():
        return await service.deliver_due(session, service.sending_for(settings))


async def test_subscriptions_crud_and_the_secret_is_shown_only_once(
    client: AsyncClient,
    make_token: MakeToken,
    receiver: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    settings: WebhookSettings,
) -> None:
    admin = await make_token("admin")
    made = await client.post(
        SUBS,
        headers=admin.headers,
        json={"name": "CRM", "url": receiver.url, "kinds": ["ticket.*"], "description": "sync"},
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")
    sub_id = made.json()["id"]

    listed = await client.get(SUBS, headers=admin.headers)
    one = await client.get(f"{SUBS}/{sub_id}", headers=admin.headers)
    changed = await client.patch(
        f"{SUBS}/{sub_id}", headers=admin.headers, json={"kinds": ["message.added"]}
    )
    for answer in (listed, one, changed):
        assert answer.status_code == 200 and secret not in answer.text
        assert "secret" not in answer.text
    assert changed.json()["kinds"] == ["message.added"]

    twin = await client.post(
        SUBS, headers=admin.headers, json={"name": "CRM", "url": receiver.url, "kinds": []}
    )
    assert twin.status_code == 409 and twin.json()["error"]["fields"] == {"name": "already taken"}

    ping = await client.post(f"{SUBS}/{sub_id}/ping", headers=admin.headers)
    assert ping.status_code == 202 and ping.json()["kind"] == "webhook.ping"
    assert secret not in ping.text
    assert await _deliver(sessions, settings) == (1, 0)
    assert check_signature(secret, receiver.received[0], now=datetime.now(UTC).timestamp())

    rotated = await client.post(f"{SUBS}/{sub_id}/rotate-secret", headers=admin.headers)
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    await client.post(f"{SUBS}/{sub_id}/ping", headers=admin.headers)
    await _deliver(sessions, settings)
    now = datetime.now(UTC).timestamp()
    assert check_signature(new_secret, receiver.received[1], now=now)
    assert not check_signature(secret, receiver.received[1], now=now)

    log = await client.get(f"{SUBS}/{sub_id}/deliveries", headers=admin.headers)
    assert log.status_code == 200
    items = log.json()["items"]
    assert [i["status"] for i in items] == ["delivered", "delivered"]
    assert items[0]["response_code"] == 200 and items[0]["duration_ms"] is not None
    assert secret not in log.text and new_secret not in log.text

    again = await client.post(
        f"/api/v1/webhooks/deliveries/{items[0]['id']}/redeliver", headers=admin.headers
    )
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert again.json()["delivery_id"] == items[0]["delivery_id"]
    await _deliver(sessions, settings)
    assert receiver.received[2].headers["servicecycle-delivery"] == items[0]["delivery_id"]

    gone = await client.delete(f"{SUBS}/{sub_id}", headers=admin.headers)
    assert gone.status_code == 204
    assert (await client.get(f"{SUBS}/{sub_id}", headers=admin.headers)).status_code == 404


async def test_bad_subscriptions_are_refused_naming_the_field(
    client: AsyncClient, make_token: MakeToken, settings: WebhookSettings
) -> None:
    admin = await make_token("admin")
    base = {"name": "x", "url": "https://example.com/h", "kinds": ["ticket.created"]}
    cases = [
        ({"kinds": ["ticket.created", "tickets.boom"]}, "kinds[1]"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"name": " "}, "name"),
        ({"colour": "red"}, "colour"),
    ]
    for change, field in cases:
        answer = await client.post(SUBS, headers=admin.headers, json={**base, **change})
        assert answer.status_code == 422, answer.text
        assert field in answer.json()["error"]["fields"], answer.text
    settings.webhooks_allow_private = False
    internal = await client.post(
        SUBS, headers=admin.headers, json={**base, "url": "http://127.0.0.1:5432/"}
    )
    assert internal.status_code == 422
    assert "private" in internal.json()["error"]["fields"]["url"]


async def test_only_admins_manage_webhooks(client: AsyncClient, make_token: MakeToken) -> None:
    agent = await make_token("agent")
    for method, path in (
        ("GET", SUBS),
        ("POST", SUBS),
        ("GET", "/api/v1/webhooks/deliveries"),
        ("POST", "/api/v1/webhooks/deliveries/1/redeliver"),
    ):
        answer = await client.request(method, path, headers=agent.headers, json={})
        assert answer.status_code == 403, (method, path, answer.text)
    assert (await client.get(SUBS)).status_code == 401


INBOUND = "/api/v1/webhooks/inbound/shop"


async def test_inbound_creates_a_ticket_once_per_external_id(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    sent = {
        "subject": "Order 1042 arrived damaged",
        "body": "The box was crushed.",
        "requester": {"email": "Ada@Example.com", "name": "Ada Lovelace"},
        "priority": "high",
        "tags": ["Shop", "damage"],
        "external_id": "order-1042",
    }
    first = await client.post(INBOUND, headers=agent.headers, json=sent)
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    ticket_id = first.json()["ticket_id"]
    again = await client.post(INBOUND, headers=agent.headers, json={**sent, "subject": "again"})
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    other = await client.post("/api/v1/webhooks/inbound/crm", headers=agent.headers, json=sent)
    assert other.status_code == 201 and other.json()["ticket_id"] != ticket_id

    ticket = (await client.get(f"/api/v1/tickets/{ticket_id}", headers=agent.headers)).json()
    assert ticket["channel"] == "api" and ticket["priority"] == "high"
    assert ticket["tags"] == ["damage", "shop"]
    assert ticket["subject"] == "Order 1042 arrived damaged"
    customer = await client.get(
        f"/api/v1/customers/{ticket['requester_id']}", headers=agent.headers
    )
    assert customer.json()["name"] == "Ada Lovelace"
    assert "ada@example.com" in customer.text  # e-mails are kept lower-case
    known = await client.post(
        INBOUND,
        headers=agent.headers,
        json={**sent, "external_id": "order-1043", "requester": {"email": "ada@example.com"}},
    )
    assert known.status_code == 201
    second = await client.get(f"/api/v1/tickets/{known.json()['ticket_id']}", headers=agent.headers)
    assert second.json()["requester_id"] == ticket["requester_id"]  # the same customer


async def test_inbound_refuses_bad_input_and_strangers(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    good = {"subject": "Hi", "body": "Hello", "requester": {"email": "bo@example.com"}}
    cases = [
        ({**good, "priority": "asap"}, "priority"),
        ({**good, "requester": {"name": "No mail"}}, "requester.email"),
        ({**good, "requester": {"email": "not-an-address"}}, "email"),
        ({**good, "subject": ""}, "subject"),
        ({**good, "colour": "red"}, "colour"),
        ({**good, "custom_fields": {"nope": 1}}, "nope"),
    ]
    for body, field in cases:
        answer = await client.post(INBOUND, headers=agent.headers, json=body)
        assert answer.status_code == 422, (body, answer.text)
        named = json.dumps(answer.json()["error"]["fields"])
        assert field in named, (field, answer.text)
    assert (await client.post(INBOUND, json=good)).status_code == 401
    analyst = await make_token("analyst")
    assert (await client.post(INBOUND, headers=analyst.headers, json=good)).status_code == 403
    bad_source = await client.post(
        "/api/v1/webhooks/inbound/Bad%20Source", headers=agent.headers, json=good
    )
    assert bad_source.status_code == 422


async def test_the_openapi_document_shows_webhooks_with_examples(client: AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/webhooks/subscriptions" in doc["paths"]
    assert "/api/v1/webhooks/inbound/{source}" in doc["paths"]
    create = doc["components"]["schemas"]["SubscriptionCreate"]["properties"]
    assert create["url"]["examples"]
