"""The channels admin pages: the overview with its mailboxes, adding and editing one (the
password write-only), testing and polling it against a real dovecot, and who may do so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import Mailbox
from servicecycle.kit import clock
from servicecycle.tickets.models import Ticket
from tests.channels.conftest import ImapAccount
from tests.channels.test_imap import mail
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}


def form(csrf: str, account: ImapAccount | None = None, **extra: str) -> dict[str, str]:
    values = {
        "csrf_token": csrf,
        "name": "Support",
        "address": "support@desk.example",
        "host": account.host if account else "imap.example.com",
        "port": str(account.port) if account else "",
        "security": "none" if account else "ssl",
        "username": account.username if account else "support@desk.example",
        "password": account.password if account else "app-password-1",
        "folder": "INBOX",
        "poll_minutes": "1",
        "enabled": "on",
    }
    values.update(extra)
    return values


async def admin(client: AsyncClient, make_user: Make) -> str:
    user = await make_user("admin")
    return await sign_in(client, user.email)


async def boxes(db: AsyncSession) -> list[Mailbox]:
    return list((await db.scalars(select(Mailbox).order_by(Mailbox.id))).all())


async def test_the_overview_lists_mailboxes_and_links_the_other_channels(
    client: AsyncClient, make_user: Make
) -> None:
    csrf = await admin(client, make_user)
    empty = await client.get("/admin/channels", headers=HTML)
    assert empty.status_code == 200 and "No mailbox yet" in empty.text
    for link in ('href="/admin/webhooks"', 'href="/admin/chat"', "/api/v1/channels/email/inbound"):
        assert link in empty.text

    saved = await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    assert saved.status_code == 303
    page = await client.get("/admin/channels", headers=HTML)
    assert "Support" in page.text and "imap.example.com:993" in page.text
    assert "not polled yet" in page.text and "app-password-1" not in page.text
    assert 'aria-current="page">Channels' in page.text


async def test_adding_a_mailbox_stores_it_with_the_password_encrypted(
    client: AsyncClient, make_user: Make, db: AsyncSession
) -> None:
    csrf = await admin(client, make_user)
    response = await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    assert response.status_code == 303
    [box] = await boxes(db)
    assert response.headers["location"] == f"/admin/mailboxes/{box.id}"
    assert box.port == 993 and box.enabled and "app-password-1" not in box.password_encrypted
    page = await client.get(f"/admin/mailboxes/{box.id}", headers=HTML)
    assert "saved" in page.text and "app-password-1" not in page.text
    assert 'name="password" type="password"' in page.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"address": "nobody"}, "address"),
        ({"port": "ninety"}, "port"),
        ({"poll_minutes": "0"}, "poll_minutes"),
        ({"password": ""}, "password"),
        ({"host": "bad host"}, "host"),
    ],
)
async def test_a_refused_mailbox_shows_why_beside_the_field_and_keeps_no_password(
    client: AsyncClient, make_user: Make, db: AsyncSession, extra: dict[str, str], field: str
) -> None:
    csrf = await admin(client, make_user)
    typed = form(csrf, **extra)
    response = await client.post("/admin/mailboxes", data=typed, headers=HTML)
    assert response.status_code == 422
    assert f'id="err-{field}"' in response.text
    assert 'value="Support"' in response.text  # what was typed is kept...
    if typed["password"]:
        assert typed["password"] not in response.text  # ...but never the password
    assert await boxes(db) == []


async def test_a_taken_name_is_refused_on_the_page(
    client: AsyncClient, make_user: Make, db: AsyncSession
) -> None:
    csrf = await admin(client, make_user)
    await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    again = await client.post(
        "/admin/mailboxes", data=form(csrf, address="other@desk.example"), headers=HTML
    )
    assert again.status_code == 409 and 'id="err-name"' in again.text
    assert len(await boxes(db)) == 1


async def test_editing_keeps_the_password_unless_a_new_one_is_typed(
    client: AsyncClient, make_user: Make, db: AsyncSession
) -> None:
    csrf = await admin(client, make_user)
    await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    [box] = await boxes(db)
    sealed = box.password_encrypted
    edit = form(csrf, name="Help desk", password="", poll_minutes="5", version=str(box.version))
    response = await client.post(f"/admin/mailboxes/{box.id}", data=edit, headers=HTML)
    assert response.status_code == 303
    await db.refresh(box)
    assert box.name == "Help desk" and box.poll_minutes == 5 and box.password_encrypted == sealed
    new = form(csrf, password="brand-new", version=str(box.version))
    await client.post(f"/admin/mailboxes/{box.id}", data=new, headers=HTML)
    await db.refresh(box)
    assert box.password_encrypted != sealed

    stale = form(csrf, name="Stale", version="1")
    refused = await client.post(f"/admin/mailboxes/{box.id}", data=stale, headers=HTML)
    assert refused.status_code == 412 and "changed since you read it" in refused.text
    await db.refresh(box)
    assert box.name == "Support"


async def test_test_and_poll_now_report_on_the_page(
    client: AsyncClient, make_user: Make, db: AsyncSession, imap_account: ImapAccount
) -> None:
    csrf = await admin(client, make_user)
    imap_account.append(mail("From the page", message_id="<page1@example.com>"))
    await client.post("/admin/mailboxes", data=form(csrf, imap_account), headers=HTML)
    [box] = await boxes(db)

    tested = await client.post(
        f"/admin/mailboxes/{box.id}/test?back=overview", data={"csrf_token": csrf}
    )
    assert tested.status_code == 303 and tested.headers["location"] == "/admin/channels"
    page = await client.get("/admin/channels", headers=HTML)
    assert "connected and opened INBOX (1 mail)" in page.text

    polled = await client.post(f"/admin/mailboxes/{box.id}/poll", data={"csrf_token": csrf})
    assert polled.headers["location"] == f"/admin/mailboxes/{box.id}"
    page = await client.get(f"/admin/mailboxes/{box.id}", headers=HTML)
    assert "polled: 1 ticket." in page.text and "working" in page.text
    assert await db.scalar(select(Ticket.id).where(Ticket.subject == "From the page"))

    await db.refresh(box)
    wrong = form(csrf, imap_account, password="wrong-one", version=str(box.version))
    await client.post(f"/admin/mailboxes/{box.id}", data=wrong, headers=HTML)
    await client.post(f"/admin/mailboxes/{box.id}/poll", data={"csrf_token": csrf})
    page = await client.get("/admin/channels", headers=HTML)
    assert "poll failed" in page.text and "AUTHENTICATIONFAILED" in page.text
    assert "failing" in page.text


async def test_removing_a_mailbox(client: AsyncClient, make_user: Make, db: AsyncSession) -> None:
    csrf = await admin(client, make_user)
    await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    [box] = await boxes(db)
    gone = await client.post(f"/admin/mailboxes/{box.id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303 and gone.headers["location"] == "/admin/channels"
    assert await boxes(db) == []


@pytest.mark.parametrize("role", ["agent", "analyst"])
async def test_only_admins_see_or_change_mailboxes(
    client: AsyncClient, make_user: Make, db: AsyncSession, role: str
) -> None:
    user = await make_user(role)
    csrf = await sign_in(client, user.email)
    assert (await client.get("/admin/channels", headers=HTML)).status_code == 403
    refused = await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    assert refused.status_code == 403
    assert await boxes(db) == []


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncClient) -> None:
    response = await client.get("/admin/channels", headers=HTML)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_forms_without_the_csrf_token_are_refused(
    client: AsyncClient, make_user: Make, db: AsyncSession
) -> None:
    csrf = await admin(client, make_user)
    await client.post("/admin/mailboxes", data=form(csrf), headers=HTML)
    [box] = await boxes(db)
    forged = form("wrong", name="Forged", address="forged@desk.example")
    assert (await client.post("/admin/mailboxes", data=forged, headers=HTML)).status_code == 403
    for action in ("", "/test", "/poll", "/delete"):
        response = await client.post(f"/admin/mailboxes/{box.id}{action}", data={"name": "x"})
        assert response.status_code == 403, action
    assert [b.name for b in await boxes(db)] == ["Support"]


async def test_the_pages_say_whether_a_mailbox_is_watched_or_polled_and_show_its_error(
    client: AsyncClient, make_user: Make, db: AsyncSession
) -> None:
    csrf = await admin(client, make_user)
    await client.post("/admin/mailboxes", data=form(csrf, poll_minutes="15"), headers=HTML)
    [box] = await boxes(db)
    page = await client.get("/admin/channels", headers=HTML)
    assert "polled every 15 min" in page.text

    # what the IDLE watcher writes while it holds the mailbox
    box.watched_until, box.watch_mode = clock.now() + timedelta(minutes=3), "idle"
    await db.flush()
    for url in ("/admin/channels", f"/admin/mailboxes/{box.id}"):
        shown = await client.get(url, headers=HTML)
        assert "watched (IDLE)" in shown.text and "polled every" not in shown.text

    # its connection dropped: the lease given back, the error shown, polling meanwhile
    box.watched_until, box.last_error = None, "IDLE: The server closed the connection"
    box.last_error_at = clock.now()
    await db.flush()
    shown = await client.get(f"/admin/mailboxes/{box.id}", headers=HTML)
    assert "The server closed the connection" in shown.text
    assert "polled every 15 min until the IDLE watcher is connected again" in shown.text

    box.watch_mode = "poll"
    await db.flush()
    shown = await client.get("/admin/channels", headers=HTML)
    assert "the server does not offer IDLE" in shown.text
    listed = await client.get("/api/v1/mailboxes", headers={"X-CSRF-Token": csrf})
    assert listed.status_code == 200, listed.text
    [read] = [item for item in listed.json() if item["id"] == box.id]
    assert read["watch_mode"] == "poll" and read["watched_until"] is None
