"""The agent workspace pages: inbox, ticket page, customer pages, through the real app."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.service import Actor
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}
SCRIPT = '<script>alert("x")</script>'


def _count(page: str, view: str) -> int:
    found = re.search(
        rf'data-view="{view}"[^>]*>\s*<span>[^<]*</span>\s*<span class="count"[^>]*>(\d+)', page
    )
    assert found, f"no count for {view}"
    return int(found.group(1))


def _numbers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page)]


def _kinds(page: str) -> list[str]:
    return re.findall(r'data-kind="([a-z_.]+)"', page)


async def _messages(db: AsyncSession, ticket_id: int) -> int:
    query = select(func.count()).select_from(Message).where(Message.ticket_id == ticket_id)
    return int(await db.scalar(query) or 0)


async def _agent(client: AsyncClient, make_user: Make, **extra: Any) -> tuple[Any, str]:
    agent = await make_user("agent", **extra)
    return agent, await sign_in(client, agent.email)


# -- inbox ----------------------------------------------------------------------------------


async def test_inbox_lists_my_open_tickets_and_counts_every_view(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    agent, _ = await _agent(client, make_user)
    mine = await make_ticket("Printer on fire", assignee_id=agent.id, priority="high")
    loose = await make_ticket("Lost parcel", tags=["delivery"])

    page = await client.get("/inbox", headers=HTML)
    assert page.status_code == 200
    assert _numbers(page.text) == [mine.id]
    assert "Printer on fire" in page.text and "Lost parcel" not in page.text
    assert _count(page.text, "my-open") == 1
    assert _count(page.text, "unassigned") == 1
    assert _count(page.text, "all-open") == 2
    assert _count(page.text, "recently-solved") == 0

    unassigned = await client.get("/inbox?view=unassigned", headers=HTML)
    assert _numbers(unassigned.text) == [loose.id]
    assert "Customer" in unassigned.text and "Unassigned" in unassigned.text


async def test_inbox_filters_narrow_the_view_and_bad_ones_are_explained(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    agent, _ = await _agent(client, make_user)
    urgent = await make_ticket("Site down", priority="urgent", channel="phone")
    tagged = await make_ticket("Refund", tags=["refund"])
    mine = await make_ticket("Mine", assignee_id=agent.id)

    def listed(query: str) -> Awaitable[Any]:
        return client.get(f"/inbox?view=all-open&{query}", headers=HTML)

    assert _numbers((await listed("priority=urgent")).text) == [urgent.id]
    assert _numbers((await listed("channel=phone")).text) == [urgent.id]
    assert _numbers((await listed("tag=refund")).text) == [tagged.id]
    assert _numbers((await listed("assignee=me")).text) == [mine.id]
    assert set(_numbers((await listed("assignee=none&status=new")).text)) == {
        urgent.id,
        tagged.id,
    }
    assert _numbers((await listed("status=solved")).text) == []
    bad = await listed("assignee=somebody")
    assert bad.status_code == 422 and "Invalid assignee" in bad.text
    unknown = await client.get("/inbox?view=nope", headers=HTML)
    assert unknown.status_code == 404 and "No view" in unknown.text
    assert "Traceback" not in unknown.text


async def test_inbox_pages_by_cursor(
    client: AsyncClient, make_user: Make, make_customer: Make, sessions: async_sessionmaker[Any]
) -> None:
    await _agent(client, make_user)
    customer = await make_customer()
    async with sessions() as session, session.begin():
        for n in range(27):
            await tickets.create_ticket(
                session,
                subject=f"Question {n}",
                requester=customer,
                channel="web",
                body_text="?",
                actor=Actor.system("test"),
            )
    first = await client.get("/inbox?view=all-open", headers=HTML)
    assert len(_numbers(first.text)) == 25
    older = re.search(r'<a href="([^"]+)" rel="next">Older →</a>', first.text)
    assert older
    second = await client.get(older.group(1).replace("&amp;", "&"), headers=HTML)
    assert len(_numbers(second.text)) == 2
    assert not set(_numbers(first.text)) & set(_numbers(second.text))
    assert "Older →" not in second.text and "← Newest" in second.text


# -- ticket page ----------------------------------------------------------------------------


async def test_ticket_page_shows_the_thread_with_notes_marked(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    make_customer: Make,
    sessions: async_sessionmaker[Any],
) -> None:
    agent, _ = await _agent(client, make_user, name="Nina Agent")
    dana = await make_customer("Dana Fox", email="dana@example.net", tier="gold")
    ticket = await make_ticket("Broken zip", requester=dana, body="The zip broke")
    other = await make_ticket("Second problem", requester=dana)
    async with sessions() as session, session.begin():
        current = await tickets.get_ticket(session, ticket.id)
        for public, text in ((True, "Sending a new one"), (False, "Courier is slow here")):
            await tickets.add_message(
                session,
                current,
                public=public,
                author_type="agent",
                author_user_id=agent.id,
                body_text=text,
                actor=Actor.user(agent.id),
            )

    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert page.status_code == 200
    text = page.text
    positions = [text.index(s) for s in ("The zip broke", "Sending a new one", "Courier is slow")]
    assert positions == sorted(positions)
    notes = re.findall(r'<article id="message-\d+" class="message ([a-z-]+)"', text)
    assert notes == ["from-customer", "from-agent", "note"]
    assert text.count("Internal note</span>") == 1
    assert "Nina Agent" in text and "Dana Fox" in text
    # the side panel: the customer, their identities and other open tickets
    assert "dana@example.net" in text and "gold" in text
    assert f'href="/tickets/{other.id}"' in text and f'href="/customers/{dana.id}"' in text
    assert f'hx-get="/tickets/{ticket.id}/version?seen=' in text


async def test_a_reply_and_a_note_round_trip_through_the_form(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}"
    sent = await client.post(
        f"{url}/messages",
        data={"csrf_token": csrf, "kind": "reply", "body": "It ships today", "status": "pending"},
    )
    assert sent.status_code == 303 and sent.headers["location"] == url
    page = await client.get(url, headers=HTML)
    assert "Reply sent." in page.text and "It ships today" in page.text
    assert '<span class="pill status status-pending">pending</span>' in page.text
    noted = await client.post(
        f"{url}/messages", data={"csrf_token": csrf, "kind": "note", "body": "Checked stock"}
    )
    assert noted.status_code == 303
    page = await client.get(url, headers=HTML)
    assert "Note added." in page.text
    stored = (
        await db.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id))
    ).all()
    assert [(m.public, m.body_text) for m in stored] == [
        (True, "It is late."),
        (True, "It ships today"),
        (False, "Checked stock"),
    ]
    assert (await db.get(Ticket, ticket.id, populate_existing=True)).status == "pending"  # type: ignore[union-attr]


async def test_an_empty_reply_shows_an_error_and_stores_nothing(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    response = await client.post(
        f"/tickets/{ticket.id}/messages",
        data={"csrf_token": csrf, "kind": "reply", "body": "   \n ", "status": "solved"},
    )
    assert response.status_code == 422
    assert "A message needs a body" in response.text and 'role="alert"' in response.text
    assert await _messages(db, ticket.id) == 1
    assert (await db.get(Ticket, ticket.id, populate_existing=True)).status == "new"  # type: ignore[union-attr]


async def test_a_refused_reply_keeps_the_typed_text_and_the_chosen_mode(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    typed = "Dear customer,\nthis took a while & <b>more</b>"
    response = await client.post(
        f"/tickets/{ticket.id}/messages",
        data={"csrf_token": csrf, "kind": "note", "body": typed, "status": "closed"},
    )
    assert response.status_code == 409
    assert "A new ticket cannot become closed" in response.text
    assert (
        "Dear customer,\nthis took a while &amp; &lt;b&gt;more&lt;/b&gt;</textarea>"
        in response.text
    )
    assert 'value="note" checked' in response.text
    assert await _messages(db, ticket.id) == 1


async def test_an_invalid_status_change_shows_the_allowed_ones(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    response = await client.post(
        f"/tickets/{ticket.id}",
        data={"csrf_token": csrf, "version": str(ticket.version), "status": "closed"},
    )
    assert response.status_code == 409
    assert "A new ticket cannot become closed" in response.text
    assert "allowed: open, pending, on-hold, solved" in response.text
    assert "Traceback" not in response.text
    assert (await db.get(Ticket, ticket.id, populate_existing=True)).status == "new"  # type: ignore[union-attr]


async def test_the_controls_update_the_ticket_and_refuse_a_stale_form(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    agent, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    form = {
        "csrf_token": csrf,
        "version": str(ticket.version),
        "status": "pending",
        "priority": "high",
        "assignee_id": str(agent.id),
        "team_id": "",
        "tags": "vip, Refund",
    }
    done = await client.post(f"/tickets/{ticket.id}", data=form)
    assert done.status_code == 303
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None
    assert (stored.status, stored.priority, stored.assignee_id, stored.tags) == (
        "pending",
        "high",
        agent.id,
        ["refund", "vip"],
    )
    stale = await client.post(f"/tickets/{ticket.id}", data={**form, "priority": "low"})
    assert stale.status_code == 412 and "changed by someone else" in stale.text


async def test_take_assigns_the_ticket_to_me(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    taken = await client.post(f"/tickets/{ticket.id}/take", data={"csrf_token": csrf})
    assert taken.status_code == 303
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert "is assigned to you" in page.text and "Take it" not in page.text
    inbox = await client.get("/inbox?view=my-open", headers=HTML)
    assert _numbers(inbox.text) == [ticket.id]


async def test_the_version_fragment_tells_when_the_ticket_moved_on(
    client: AsyncClient, make_user: Make, make_ticket: Make, sessions: async_sessionmaker[Any]
) -> None:
    await _agent(client, make_user)
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}/version?seen={ticket.version}"
    same = await client.get(url, headers=HTML)
    assert same.status_code == 200 and "updated" not in same.text
    assert f'data-version="{ticket.version}"' in same.text
    async with sessions() as session, session.begin():
        current = await tickets.get_ticket(session, ticket.id)
        await tickets.add_message(
            session,
            current,
            public=True,
            author_type="customer",
            author_customer_id=current.requester_id,
            body_text="Any news?",
            actor=Actor("customer", str(current.requester_id)),
        )
    moved = await client.get(url, headers=HTML)
    assert moved.status_code == 286  # htmx stops polling once it has shown the notice
    assert "This ticket was updated" in moved.text and f'href="/tickets/{ticket.id}"' in moved.text


# -- access, CSRF and escaping ------------------------------------------------------------------


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncClient) -> None:
    for path in ("/inbox", "/tickets/1001", "/customers", "/customers/1"):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


async def test_every_post_needs_the_csrf_token(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    await _agent(client, make_user)
    ticket = await make_ticket()
    for path, data in (
        (f"/tickets/{ticket.id}/messages", {"kind": "reply", "body": "hi"}),
        (f"/tickets/{ticket.id}/take", {}),
        (f"/tickets/{ticket.id}", {"version": "1", "priority": "urgent"}),
    ):
        refused = await client.post(path, data={**data, "csrf_token": "forged"}, headers=HTML)
        assert refused.status_code == 403, path
        assert (await client.post(path, data=data, headers=HTML)).status_code == 403
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None and stored.priority == "normal" and stored.assignee_id is None
    assert await _messages(db, ticket.id) == 1


async def test_analysts_read_customers_but_do_not_work_tickets(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    analyst = await make_user("analyst")
    await sign_in(client, analyst.email)
    ticket = await make_ticket()
    assert (await client.get("/inbox", headers=HTML)).status_code == 403
    assert (await client.get(f"/tickets/{ticket.id}", headers=HTML)).status_code == 403
    home = await client.get("/", headers=HTML)
    assert 'href="/customers"' in home.text and 'href="/inbox"' not in home.text
    customer = await client.get(f"/customers/{ticket.requester_id}", headers=HTML)
    assert customer.status_code == 200 and f"#{ticket.id}" in customer.text
    assert f'href="/tickets/{ticket.id}"' not in customer.text


async def test_markup_in_subjects_names_and_bodies_is_never_live(
    client: AsyncClient, make_user: Make, make_ticket: Make, make_customer: Make
) -> None:
    _, csrf = await _agent(client, make_user)
    customer = await make_customer(SCRIPT)
    ticket = await make_ticket(
        SCRIPT, requester=customer, body=SCRIPT, tags=["x"], priority="urgent"
    )
    second = await make_ticket("Fine", requester=customer, body_html=f"<p>hi</p>{SCRIPT}")
    sent = await client.post(
        f"/tickets/{ticket.id}/messages",
        data={"csrf_token": csrf, "kind": "note", "body": SCRIPT},
    )
    assert sent.status_code == 303
    for path in (
        "/inbox?view=all-open",
        f"/tickets/{ticket.id}",
        f"/tickets/{second.id}",
        f"/customers/{customer.id}",
        "/customers?q=script",
    ):
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
        assert "&lt;script&gt;alert" in page.text, path


# -- customers ------------------------------------------------------------------------------


async def test_customers_are_found_by_name_or_address(
    client: AsyncClient, make_user: Make, make_customer: Make
) -> None:
    await _agent(client, make_user)
    await make_customer("Zebediah Quill", email="zq@quill.example")
    await make_customer("Other Person", email="op@else.example")
    by_name = await client.get("/customers?q=zebed", headers=HTML)
    assert "Zebediah Quill" in by_name.text and "Other Person" not in by_name.text
    by_mail = await client.get("/customers?q=else.example", headers=HTML)
    assert "Other Person" in by_mail.text and "Zebediah" not in by_mail.text
    nobody = await client.get("/customers?q=nobody-at-all", headers=HTML)
    assert "No customer matches" in nobody.text


async def test_a_customer_timeline_tells_the_whole_story_in_order(
    client: AsyncClient, make_user: Make, make_ticket: Make, make_customer: Make
) -> None:
    agent, csrf = await _agent(client, make_user, name="Omar Agent")
    customer = await make_customer("Rita Requester", email="rita@example.org", tier="premium")
    ticket = await make_ticket("Refund please", requester=customer, body="Broken on arrival")
    url = f"/tickets/{ticket.id}"
    await client.post(f"{url}/take", data={"csrf_token": csrf})
    await client.post(
        f"{url}/messages", data={"csrf_token": csrf, "kind": "reply", "body": "Refund sent"}
    )
    await client.post(
        f"{url}/messages", data={"csrf_token": csrf, "kind": "note", "body": "via the PSP"}
    )
    page = await client.get(url, headers=HTML)
    version = re.search(r'name="version" value="(\d+)"', page.text)
    assert version
    solved = await client.post(
        url,
        data={
            "csrf_token": csrf,
            "version": version.group(1),
            "status": "solved",
            "priority": "normal",
            "assignee_id": str(agent.id),
        },
    )
    assert solved.status_code == 303, solved.text

    profile = await client.get(f"/customers/{customer.id}", headers=HTML)
    assert profile.status_code == 200
    text = profile.text
    assert "rita@example.org" in text and "premium" in text
    # the e-mail channel's acknowledgement and the mailed reply are part of the story too
    assert _kinds(text) == [
        "customer.created",
        "ticket.created",
        "message.added",
        "mail.queued",
        "assigned",
        "message.added",
        "mail.queued",
        "status.changed",
        "message.added",
        "status.changed",
    ]
    order = [
        text.index(s) for s in ("Broken on arrival", "Refund sent", "via the PSP", "status-solved")
    ]
    assert order == sorted(order)
    assert 'Omar Agent</strong> added an <span class="label-note">Internal note' in text
    assert "Omar Agent</strong> took the ticket" in text


async def test_files_on_a_message_are_listed_for_download(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    browser = {"X-CSRF-Token": csrf}
    uploaded = await client.post(
        "/api/v1/uploads",
        headers=browser,
        files={"file": ("label.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    sent = await client.post(
        f"/api/v1/tickets/{ticket.id}/messages",
        headers=browser,
        json={"kind": "reply", "body": "Here is the label", "attachment_ids": [file_id]},
    )
    assert sent.status_code == 201, sent.text
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert f'<a href="/api/v1/attachments/{file_id}" download>label.png</a>' in page.text
