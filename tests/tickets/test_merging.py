from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
Make = Callable[..., Awaitable[Any]]


async def test_merge_moves_messages_and_the_old_number_redirects(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent = await make_token("agent")
    requester_ticket = await make_ticket("Lost parcel", body="first report", tags=["delivery"])
    dupe = await make_ticket("Lost parcel again", body="second report", tags=["urgent-ish"])
    merged = await client.post(
        f"/api/v1/tickets/{dupe.id}/merge",
        headers=agent.headers,
        json={"into_id": requester_ticket.id},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["tags"] == ["delivery", "urgent-ish"]
    thread = (
        await client.get(f"/api/v1/tickets/{requester_ticket.id}/messages", headers=agent.headers)
    ).json()
    texts = [m["body_text"] for m in thread]
    assert texts[:2] == ["first report", "second report"]
    assert any("was merged into this ticket" in t for t in texts)
    old = await client.get(
        f"/api/v1/tickets/{dupe.id}", headers=agent.headers, follow_redirects=False
    )
    assert (
        old.status_code == 308
        and old.headers["location"] == f"/api/v1/tickets/{requester_ticket.id}"
    )
    followed = await client.get(
        f"/api/v1/tickets/{dupe.id}", headers=agent.headers, follow_redirects=True
    )
    assert followed.json()["id"] == requester_ticket.id


async def test_merge_refusals_have_reasons(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent = await make_token("agent")
    one, two = await make_ticket(), await make_ticket()
    itself = await client.post(
        f"/api/v1/tickets/{one.id}/merge", headers=agent.headers, json={"into_id": one.id}
    )
    assert itself.status_code == 422 and "itself" in itself.json()["error"]["message"]
    await client.patch(
        f"/api/v1/tickets/{two.id}", headers=agent.headers, json={"status": "solved", "version": 1}
    )
    await client.patch(
        f"/api/v1/tickets/{two.id}", headers=agent.headers, json={"status": "closed", "version": 2}
    )
    closed = await client.post(
        f"/api/v1/tickets/{one.id}/merge", headers=agent.headers, json={"into_id": two.id}
    )
    assert closed.status_code == 409 and "closed ticket" in closed.json()["error"]["message"]
    still = (await client.get(f"/api/v1/tickets/{one.id}/messages", headers=agent.headers)).json()
    assert len(still) == 1


async def test_split_links_and_followers(
    client: AsyncClient, make_token: MakeToken, make_ticket: Make
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket("Two problems", body="My zip broke")
    url = f"/api/v1/tickets/{ticket.id}"
    second = await client.post(
        f"{url}/messages",
        headers=agent.headers,
        json={"kind": "note", "body": "Also asks about invoices"},
    )
    split = await client.post(
        f"{url}/split",
        headers=agent.headers,
        json={"message_ids": [second.json()["id"]], "subject": "Invoice question"},
    )
    assert split.status_code == 201, split.text
    new_id = split.json()["id"]
    assert split.json()["requester_id"] == ticket.requester_id
    moved = (await client.get(f"/api/v1/tickets/{new_id}/messages", headers=agent.headers)).json()
    assert [m["body_text"] for m in moved] == ["Also asks about invoices"]
    relations = (await client.get(f"{url}/relations", headers=agent.headers)).json()
    assert relations["links"] == [{"ticket_id": new_id, "kind": "split_from"}]
    everything = (await client.get(f"{url}/messages", headers=agent.headers)).json()
    refused = await client.post(
        f"{url}/split",
        headers=agent.headers,
        json={"message_ids": [m["id"] for m in everything], "subject": "All"},
    )
    assert refused.status_code == 422
    followed = await client.put(f"{url}/followers/{agent.user.id}", headers=agent.headers)
    assert followed.json()["follower_ids"] == [agent.user.id]
    other = await make_ticket()
    linked = await client.post(f"{url}/links", headers=agent.headers, json={"linked_id": other.id})
    assert {"ticket_id": other.id, "kind": "related"} in linked.json()["links"]
    gone = await client.delete(f"{url}/followers/{agent.user.id}", headers=agent.headers)
    assert gone.json()["follower_ids"] == []
    assert (
        await client.delete(f"{url}/followers/{agent.user.id}", headers=agent.headers)
    ).status_code == 404
