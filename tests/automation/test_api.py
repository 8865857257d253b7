from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]


async def test_rules_api_validates_paths_and_dry_runs(
    client: AsyncClient, make_token: MakeToken, make_ticket: Callable[..., Awaitable[Any]]
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    rule = {
        "name": "VIP first",
        "kind": "trigger",
        "events": ["ticket.created"],
        "conditions": [{"field": "customer.tier", "op": "is", "value": "vip"}],
        "actions": [{"type": "set_priority", "value": "high"}],
    }
    assert (await client.post("/api/v1/rules", headers=agent.headers, json=rule)).status_code == 403
    bad = await client.post(
        "/api/v1/rules",
        headers=admin.headers,
        json={**rule, "actions": [{"type": "set_priority", "value": "asap"}]},
    )
    assert bad.status_code == 422 and bad.json()["error"]["fields"] == {
        "actions[0].value": "one of low, normal, high, urgent"
    }
    no_wait = await client.post(
        "/api/v1/rules",
        headers=admin.headers,
        json={**rule, "name": "t", "kind": "time", "events": []},
    )
    assert no_wait.status_code == 422 and "conditions" in no_wait.json()["error"]["fields"]
    made = await client.post("/api/v1/rules", headers=admin.headers, json=rule)
    assert made.status_code == 201, made.text
    vip_ticket = await make_ticket(requester=None)
    dry = await client.post(f"/api/v1/rules/{made.json()['id']}/dry-run", headers=admin.headers)
    assert dry.status_code == 200 and vip_ticket.id not in dry.json()["ticket_ids"]
    off = await client.patch(
        f"/api/v1/rules/{made.json()['id']}",
        headers=admin.headers,
        json={"active": False, "version": 1},
    )
    assert off.json()["active"] is False


async def test_macros_preview_and_apply(
    client: AsyncClient,
    make_token: MakeToken,
    make_customer: Callable[..., Awaitable[Any]],
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    agent = await make_token("agent")
    customer = await make_customer("Nadia Okoye")
    ticket = await make_ticket("Refund", requester=customer)
    unknown = await client.post(
        "/api/v1/macros",
        headers=agent.headers,
        json={"name": "x", "body": "Hi {{customer.shoe_size}}"},
    )
    assert (
        unknown.status_code == 422
        and "customer.shoe_size" in unknown.json()["error"]["fields"]["body"]
    )
    shared = await client.post(
        "/api/v1/macros", headers=agent.headers, json={"name": "x", "body": "Hi", "shared": True}
    )
    assert shared.status_code == 403
    macro = await client.post(
        "/api/v1/macros",
        headers=agent.headers,
        json={
            "name": "Refund sent",
            "body": "Hi {{customer.first_name}}, refund for #{{ticket.number}} sent. "
            "<script>x</script>— {{agent.first_name}}",
            "actions": [
                {"type": "set_status", "value": "solved"},
                {"type": "add_tags", "value": ["refunded"]},
            ],
        },
    )
    assert macro.status_code == 201, macro.text
    url = f"/api/v1/tickets/{ticket.id}/macros/{macro.json()['id']}"
    preview = (await client.get(f"{url}/preview", headers=agent.headers)).json()
    first_name = agent.user.name.split(" ")[0]
    assert (
        preview["body"]
        == f"Hi Nadia, refund for #{ticket.id} sent. <script>x</script>— {first_name}"
    )
    applied = await client.post(url, headers=agent.headers, json={})
    assert applied.status_code == 200, applied.text
    sent = applied.json()[0]
    assert sent["public"] is True and "<script>" not in sent["body_html"]
    after = (await client.get(f"/api/v1/tickets/{ticket.id}", headers=agent.headers)).json()
    assert after["status"] == "solved" and after["tags"] == ["refunded"]
