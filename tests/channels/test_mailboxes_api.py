"""The mailbox API: admins only, the password write-only, refusals naming the field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import Mailbox
from servicecycle.events.models import Event
from tests.channels.conftest import ImapAccount
from tests.channels.test_imap import mail
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]


def body(account: ImapAccount | None = None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Support",
        "address": "Support@Desk.example",
        "host": account.host if account else "imap.example.com",
        "port": account.port if account else None,
        "security": "none" if account else "ssl",
        "username": account.username if account else "support@desk.example",
        "password": account.password if account else "app-password-1",
    }
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


async def create(client: AsyncClient, admin: Token, **values: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/mailboxes", headers=admin.headers, json=values)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_an_admin_creates_reads_changes_and_deletes_a_mailbox(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    admin = await make_token("admin")
    made = await create(client, admin, **body())
    assert made["address"] == "support@desk.example" and made["port"] == 993
    assert made["folder"] == "INBOX" and made["enabled"] and made["poll_minutes"] == 1
    assert "password" not in made and "password_encrypted" not in made
    assert "app-password-1" not in str(made)
    stored = await db.get(Mailbox, made["id"])
    assert stored is not None and "app-password-1" not in stored.password_encrypted

    listed = (await client.get("/api/v1/mailboxes", headers=admin.headers)).json()
    assert [m["name"] for m in listed] == ["Support"]
    one = await client.get(f"/api/v1/mailboxes/{made['id']}", headers=admin.headers)
    assert one.json()["id"] == made["id"]

    changed = await client.patch(
        f"/api/v1/mailboxes/{made['id']}",
        headers=admin.headers,
        json={"security": "starttls", "poll_minutes": 5, "version": made["version"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["port"] == 143 and changed.json()["poll_minutes"] == 5
    stale = await client.patch(
        f"/api/v1/mailboxes/{made['id']}",
        headers={**admin.headers, "If-Match": f'"{made["version"]}"'},
        json={"poll_minutes": 7},
    )
    assert stale.status_code == 412

    gone = await client.delete(f"/api/v1/mailboxes/{made['id']}", headers=admin.headers)
    assert gone.status_code == 204
    missing = await client.get(f"/api/v1/mailboxes/{made['id']}", headers=admin.headers)
    assert missing.status_code == 404
    kinds = (
        await db.scalars(
            select(Event.kind)
            .where(Event.subject_type == "mailbox", Event.subject_id == str(made["id"]))
            .order_by(Event.id)
        )
    ).all()
    assert list(kinds) == ["mailbox.created", "mailbox.updated", "mailbox.deleted"]
    events = (await db.scalars(select(Event).where(Event.subject_type == "mailbox"))).all()
    assert all("app-password-1" not in str(e.data) for e in events)


async def test_a_new_password_replaces_the_old_one_and_is_never_shown(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    admin = await make_token("admin")
    made = await create(client, admin, **body())
    before = (await db.get(Mailbox, made["id"])).password_encrypted  # type: ignore[union-attr]
    kept = await client.patch(
        f"/api/v1/mailboxes/{made['id']}", headers=admin.headers, json={"name": "Help"}
    )
    assert kept.status_code == 200
    await db.refresh(row := await db.get(Mailbox, made["id"]))  # type: ignore[arg-type]
    assert row is not None and row.password_encrypted == before
    replaced = await client.patch(
        f"/api/v1/mailboxes/{made['id']}",
        headers=admin.headers,
        json={"password": "another-one"},
    )
    assert replaced.status_code == 200 and "another-one" not in replaced.text
    await db.refresh(row)
    assert row.password_encrypted != before


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"address": "not-an-address"}, "address"),
        ({"host": "imap example.com"}, "host"),
        ({"port": 70000}, "port"),
        ({"security": "tls"}, "security"),
        ({"poll_minutes": 0}, "poll_minutes"),
        ({"password": ""}, "password"),
        ({"folder": 'In"box'}, "folder"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    client: AsyncClient,
    make_token: MakeToken,
    db: AsyncSession,
    values: dict[str, Any],
    field: str,
) -> None:
    admin = await make_token("admin")
    response = await client.post("/api/v1/mailboxes", headers=admin.headers, json=body(**values))
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]
    assert await db.scalar(select(Mailbox.id)) is None  # nothing half written


async def test_a_missing_field_and_a_bad_change_are_refused_by_name(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin = await make_token("admin")
    values = body()
    del values["host"]
    missing = await client.post("/api/v1/mailboxes", headers=admin.headers, json=values)
    assert missing.status_code == 422 and "host" in missing.json()["error"]["fields"]
    made = await create(client, admin, **body())
    for change, field in (({"host": None}, "host"), ({"interval": 3}, "interval")):
        response = await client.patch(
            f"/api/v1/mailboxes/{made['id']}", headers=admin.headers, json=change
        )
        assert response.status_code == 422, response.text
        assert field in response.json()["error"]["fields"]


async def test_a_taken_name_or_address_is_a_conflict(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin = await make_token("admin")
    first = await create(client, admin, **body())
    again = await client.post(
        "/api/v1/mailboxes", headers=admin.headers, json=body(address="other@desk.example")
    )
    assert again.status_code == 409 and "name" in again.json()["error"]["fields"]
    same_address = await client.post(
        "/api/v1/mailboxes", headers=admin.headers, json=body(name="Other")
    )
    assert same_address.status_code == 409 and "address" in same_address.json()["error"]["fields"]
    second = await create(client, admin, **body(name="Sales", address="sales@desk.example"))
    clash = await client.patch(
        f"/api/v1/mailboxes/{second['id']}", headers=admin.headers, json={"name": first["name"]}
    )
    assert clash.status_code == 409


async def test_only_admins_may_see_or_touch_mailboxes(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin = await make_token("admin")
    made = await create(client, admin, **body())
    agent = await make_token("agent")
    no_admin_scope = await make_token("admin", scopes=["read", "write"])
    for token in (agent, no_admin_scope):
        for method, path in (
            ("GET", "/api/v1/mailboxes"),
            ("POST", "/api/v1/mailboxes"),
            ("GET", f"/api/v1/mailboxes/{made['id']}"),
            ("PATCH", f"/api/v1/mailboxes/{made['id']}"),
            ("DELETE", f"/api/v1/mailboxes/{made['id']}"),
            ("POST", f"/api/v1/mailboxes/{made['id']}/test"),
            ("POST", f"/api/v1/mailboxes/{made['id']}/poll"),
        ):
            response = await client.request(method, path, headers=token.headers, json={})
            assert response.status_code == 403, (method, path, response.text)
    anonymous = await client.get("/api/v1/mailboxes")
    assert anonymous.status_code == 401


async def test_testing_the_connection_says_ok_or_gives_the_servers_answer(
    client: AsyncClient, make_token: MakeToken, imap_account: ImapAccount
) -> None:
    admin = await make_token("admin")
    imap_account.append(mail("Hello"))
    good = await create(client, admin, **body(imap_account))
    checked = await client.post(f"/api/v1/mailboxes/{good['id']}/test", headers=admin.headers)
    assert checked.status_code == 200
    assert checked.json()["ok"] is True and checked.json()["messages"] == 1
    assert imap_account.count() == 1 and "\\Seen" not in imap_account.flags(1)

    bad = await create(
        client,
        admin,
        **body(imap_account, name="Wrong", address="w@desk.example", password="nope"),
    )
    refused = await client.post(f"/api/v1/mailboxes/{bad['id']}/test", headers=admin.headers)
    assert refused.status_code == 200
    assert refused.json()["ok"] is False and "AUTHENTICATIONFAILED" in refused.json()["error"]


async def test_poll_now_takes_the_new_mail_and_shows_errors(
    client: AsyncClient, make_token: MakeToken, imap_account: ImapAccount
) -> None:
    admin = await make_token("admin")
    imap_account.append(mail("Poll me now", message_id="<now1@example.com>"))
    made = await create(client, admin, **body(imap_account))

    polled = await client.post(f"/api/v1/mailboxes/{made['id']}/poll", headers=admin.headers)

    assert polled.status_code == 200, polled.text
    assert polled.json() == {
        "ok": True,
        "error": None,
        "outcomes": {"ticket": 1},
        "failed": 0,
        "more": False,
    }
    state = (await client.get(f"/api/v1/mailboxes/{made['id']}", headers=admin.headers)).json()
    assert state["received_count"] == 1 and state["last_polled_at"] is not None
    tickets = (await client.get("/api/v1/tickets", headers=admin.headers)).json()
    assert "Poll me now" in str(tickets)

    await client.patch(
        f"/api/v1/mailboxes/{made['id']}", headers=admin.headers, json={"password": "wrong"}
    )
    failed = await client.post(f"/api/v1/mailboxes/{made['id']}/poll", headers=admin.headers)
    assert failed.status_code == 200 and failed.json()["ok"] is False
    state = (await client.get(f"/api/v1/mailboxes/{made['id']}", headers=admin.headers)).json()
    assert "Login failed" in state["last_error"]


async def test_the_mailbox_routes_are_in_the_openapi_document_with_examples(
    client: AsyncClient,
) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/mailboxes",
        "/api/v1/mailboxes/{mailbox_id}",
        "/api/v1/mailboxes/{mailbox_id}/test",
        "/api/v1/mailboxes/{mailbox_id}/poll",
    ):
        assert path in doc["paths"]
    create_schema = doc["components"]["schemas"]["MailboxCreate"]
    assert create_schema["properties"]["host"]["examples"] == ["imap.gmail.com"]
    assert "password" not in doc["components"]["schemas"]["MailboxRead"]["properties"]
