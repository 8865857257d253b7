"""The agent workspace pages: inbox, ticket page, customer pages, through the real app."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.automation import macros
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.tickets import custom_fields, workspace
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Attachment, Message, Ticket
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
        (f"/tickets/{ticket.id}/presence", {"replying": "1"}),
        ("/inbox/views", {"name": "Mine", "view": "all-open"}),
        ("/inbox/views/1/delete", {}),
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


async def test_a_customer_timeline_tells_the_whole_story_newest_first(
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
    # newest first, as a profile is read: what happened last is at the top; the e-mail
    # channel's acknowledgement and the mailed reply are part of the story too
    assert _kinds(text) == [
        "status.changed",
        "message.added",
        "status.changed",
        "mail.queued",
        "message.added",
        "assigned",
        "mail.queued",
        "message.added",
        "ticket.created",
        "customer.created",
    ]
    order = [
        text.index(s) for s in ("Broken on arrival", "Refund sent", "via the PSP", "status-solved")
    ]
    assert order == sorted(order, reverse=True)
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


# -- SLA on the inbox and the ticket page -------------------------------------------------------

SYSTEM = Actor.system("test")
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Moment:
    def __init__(self) -> None:
        self.now = NINE


@pytest.fixture
def frozen() -> Iterator[Moment]:
    moment = Moment()
    clock.set_source(lambda: moment.now)
    yield moment
    clock.set_source(None)


@pytest.fixture
def lent(app: Any) -> workspace.Sources:
    """What create_app is to lend the workspace: the sla service and the macros module."""
    sources = workspace.Sources(sla=sla, macros=macros)
    app.state.workspace = sources
    return sources


def _sla_cells(page: str) -> dict[int, tuple[str, str]]:
    """Ticket number -> (tone, text) of its SLA cell."""
    found = re.findall(
        r'<td class="num">(\d+)</td>.*?<td class="sla-col">(?:<span class="sla sla-([a-z]+)"'
        r"[^>]*>([^<]+)</span>|<span class=\"muted\">(—)</span>)",
        page,
        flags=re.S,
    )
    return {int(n): (tone or "none", text or dash) for n, tone, text, dash in found}


async def _sla_desk(
    sessions: async_sessionmaker[Any], frozen: Moment, make_ticket: Make
) -> dict[str, Ticket]:
    """Tickets opened at different times under a 2 h first-reply target, warned 60 m ahead."""
    made: dict[str, Ticket] = {}
    frozen.now = NINE - timedelta(minutes=200)
    made["none"] = await make_ticket("Before any policy")
    async with sessions() as session, session.begin():
        await sla.create_policy(
            session,
            name="Standard",
            conditions={},
            targets={
                "first_reply": {"minutes": 120, "business": False},
                "resolution": {"minutes": 480, "business": False},
            },
            calendar_id=None,
            pause_statuses=["pending", "on-hold"],
            warn_minutes=60,
            actor=SYSTEM,
        )
    for key, minutes_ago in (("late", 155), ("soon", 100), ("window", 75), ("fine", 10)):
        frozen.now = NINE - timedelta(minutes=minutes_ago)
        made[key] = await make_ticket(f"Ticket {key}")
    frozen.now = NINE - timedelta(minutes=5)
    made["waiting"] = await make_ticket("Ticket waiting")
    async with sessions() as session, session.begin():
        waiting = await tickets.get_ticket(session, made["waiting"].id)
        await tickets.update_ticket(
            session, waiting, expected_version=None, changes={"status": "pending"}, actor=SYSTEM
        )
    frozen.now = NINE
    return made


async def test_inbox_rows_show_the_nearest_sla_target_coloured(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    frozen: Moment,
    lent: workspace.Sources,
) -> None:
    await _agent(client, make_user)
    made = await _sla_desk(sessions, frozen, make_ticket)
    page = await client.get("/inbox?view=all-open", headers=HTML)
    assert page.status_code == 200
    cells = _sla_cells(page.text)
    assert cells == {
        made["waiting"].id: ("paused", "paused"),
        made["fine"].id: ("ok", "1 h 50 m left"),
        # under the policy's 60-minute warn window
        made["window"].id: ("warning", "45 m left"),
        made["soon"].id: ("warning", "20 m left"),
        made["late"].id: ("breached", "overdue 35 m"),
        made["none"].id: ("none", "—"),
    }
    assert 'title="First reply due 02 Mar 2026, 09:20 UTC"' in page.text


async def test_the_inbox_orders_by_sla_due_and_narrows_to_tickets_at_risk(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    frozen: Moment,
    lent: workspace.Sources,
) -> None:
    await _agent(client, make_user)
    made = await _sla_desk(sessions, frozen, make_ticket)
    ids = {ticket.id: key for key, ticket in made.items()}

    def keys(page: str) -> list[str]:
        return [ids[n] for n in _numbers(page)]

    due_first = await client.get("/inbox?view=all-open&sort=sla", headers=HTML)
    assert keys(due_first.text) == ["late", "soon", "window", "fine", "waiting", "none"]
    assert '<option value="sla" selected>SLA due first</option>' in due_first.text
    at_risk = await client.get("/inbox?view=all-open&sla=at-risk", headers=HTML)
    assert keys(at_risk.text) == ["window", "soon", "late"]  # the view's own order
    both = await client.get("/inbox?view=all-open&sla=at-risk&sort=sla", headers=HTML)
    assert keys(both.text) == ["late", "soon", "window"]
    breached = await client.get("/inbox?view=all-open&sla=breached", headers=HTML)
    assert keys(breached.text) == ["late"]
    # narrowed further by the usual filters, and paged by number
    mine = await client.get("/inbox?view=my-open&sla=at-risk", headers=HTML)
    assert keys(mine.text) == [] and "No tickets match these filters." in mine.text
    assert 'rel="next"' not in due_first.text


async def test_the_ticket_page_lists_its_clocks(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    frozen: Moment,
    lent: workspace.Sources,
) -> None:
    _, csrf = await _agent(client, make_user)
    made = await _sla_desk(sessions, frozen, make_ticket)
    url = f"/tickets/{made['soon'].id}"
    page = (await client.get(url, headers=HTML)).text
    panel = page[page.index('class="card sla-card"') : page.index('class="card customer-card"')]
    assert [h for h in re.findall(r"<strong>([^<]+)</strong>", panel)] == [
        "First reply",
        "Resolution",
    ]
    assert '<span class="sla sla-warning">20 m left</span>' in panel
    assert '<span class="sla sla-ok">6 h 20 m left</span>' in panel
    assert "02 Mar 2026, 09:20 UTC" in panel and "<dt>Target</dt><dd>2 h</dd>" in panel
    assert panel.count("<dt>Used</dt><dd>1 h 40 m</dd>") == 2  # calendar time, still running
    frozen.now = NINE + timedelta(minutes=5)
    await client.post(f"{url}/messages", data={"csrf_token": csrf, "body": "On it"})
    page = (await client.get(url, headers=HTML)).text
    panel = page[page.index('class="card sla-card"') : page.index('class="card customer-card"')]
    assert '<span class="sla sla-ok">met</span>' in panel
    assert "<dt>Stopped</dt><dd><time" in panel and "<dt>Used</dt><dd>1 h 45 m</dd>" in panel
    none = await client.get(f"/tickets/{made['none'].id}", headers=HTML)
    assert "No SLA policy applies to this ticket." in none.text


async def test_without_an_sla_source_the_workspace_hides_sla(
    app: Any, client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    app.state.workspace = workspace.NO_SOURCES  # the app hands the real ones in
    await _agent(client, make_user)
    ticket = await make_ticket()
    inbox = await client.get("/inbox?view=all-open&sort=sla&sla=breached", headers=HTML)
    assert inbox.status_code == 200 and 'class="sla-col"' not in inbox.text
    assert 'id="f-sla"' not in inbox.text and _numbers(inbox.text) == [ticket.id]
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert "sla-card" not in page.text and "data-macro-select" not in page.text


# -- who else is on the ticket ------------------------------------------------------------------


async def test_presence_tells_who_else_is_viewing_or_writing(
    app: Any, client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    _, ana_csrf = await _agent(client, make_user, name="Ana Lopez")
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}/presence"
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert f'hx-post="{url}" hx-trigger="load, every 10s"' in page.text
    alone = await client.post(url, data={"csrf_token": ana_csrf, "replying": ""})
    assert alone.status_code == 200 and alone.text.strip() == ""

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as ben:
        bens = await make_user("agent", name="Ben Ode")
        ben_csrf = await sign_in(ben, bens.email)
        seen = await ben.post(url, data={"csrf_token": ben_csrf, "replying": "1"})
        assert "<strong>Ana Lopez</strong> is also viewing" in seen.text
        assert "Ben Ode" not in seen.text
        told = await client.post(url, data={"csrf_token": ana_csrf, "replying": "1"})
        assert "<strong>Ben Ode</strong> is writing a reply" in told.text
        again = await ben.post(url, data={"csrf_token": ben_csrf, "replying": ""})
        assert "<strong>Ana Lopez</strong> is writing a reply" in again.text
        forged = await ben.post(url, data={"csrf_token": "forged"}, headers=HTML)
        assert forged.status_code == 403


# -- saved views ------------------------------------------------------------------------------


def _saved(page: str) -> dict[str, int]:
    """Saved view name -> count, from the left column."""
    found = re.findall(
        r'data-view="saved:\d+"[^>]*>\s*<span class="view-name">([^<]+?)\s*(?:<small[^>]*>shared'
        r'</small>)?</span>\s*<span class="count"[^>]*>(\d+)',
        page,
    )
    return {name: int(count) for name, count in found}


async def test_a_filter_saved_as_a_view_is_listed_with_its_count_and_deleted(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    _, csrf = await _agent(client, make_user)
    urgent = await make_ticket("Site down", priority="urgent")
    await make_ticket("Calm question")
    inbox = await client.get("/inbox?view=all-open&priority=urgent", headers=HTML)
    assert 'action="/inbox/views"' in inbox.text and 'name="shared"' not in inbox.text
    assert '<input type="hidden" name="priority" value="urgent">' in inbox.text
    saved = await client.post(
        "/inbox/views",
        data={"csrf_token": csrf, "name": "Urgent", "view": "all-open", "priority": "urgent"},
    )
    assert saved.status_code == 303
    target = saved.headers["location"]
    assert re.fullmatch(r"/inbox\?view=saved%3A\d+", target)
    view_id = int(target.rsplit("A", 1)[1])
    page = await client.get(target, headers=HTML)
    assert "View “Urgent” saved." in page.text
    assert _saved(page.text) == {"Urgent": 1}
    assert _numbers(page.text) == [urgent.id]
    assert '<h1 id="view-title">Urgent</h1>' in page.text
    # a saved view is narrowed further like any other
    assert _numbers((await client.get(f"{target}&channel=phone", headers=HTML)).text) == []

    gone = await client.post(f"/inbox/views/{view_id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303 and gone.headers["location"] == "/inbox"
    page = await client.get("/inbox", headers=HTML)
    assert "View “Urgent” deleted." in page.text and _saved(page.text) == {}
    missing = await client.get(target, headers=HTML)
    assert missing.status_code == 404 and "No view" in missing.text


async def test_a_refused_view_keeps_the_name_and_the_filters(
    client: AsyncClient, make_user: Make
) -> None:
    _, csrf = await _agent(client, make_user)
    form = {"csrf_token": csrf, "view": "all-open", "tag": "refund", "status": "open"}
    empty = await client.post("/inbox/views", data={**form, "name": "  "})
    assert empty.status_code == 422 and "Name is required" in empty.text
    assert '<details class="save-view" open>' in empty.text
    shared = await client.post("/inbox/views", data={**form, "name": "Refunds", "shared": "1"})
    assert shared.status_code == 403
    assert "Only admins can share views with everyone" in shared.text
    assert 'id="view-name" name="name" value="Refunds"' in shared.text
    assert '<input type="hidden" name="tag" value="refund">' in shared.text
    assert 'value="refund" placeholder' in shared.text  # the filter bar too
    assert _saved(shared.text) == {}


async def test_admins_share_views_that_agents_see_but_cannot_delete(
    app: Any, client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    await make_ticket("Lost parcel", tags=["delivery"])
    inbox = await client.get("/inbox", headers=HTML)
    assert 'name="shared"' in inbox.text
    saved = await client.post(
        "/inbox/views",
        data={
            "csrf_token": csrf,
            "name": "Deliveries",
            "shared": "1",
            "view": "all-open",
            "tag": "delivery",
        },
    )
    assert saved.status_code == 303
    view_id = int(saved.headers["location"].rsplit("A", 1)[1])
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as other:
        agent = await make_user("agent")
        agent_csrf = await sign_in(other, agent.email)
        page = await other.get("/inbox", headers=HTML)
        assert _saved(page.text) == {"Deliveries": 1}
        assert '<small class="shared-mark">shared</small>' in page.text
        assert f'action="/inbox/views/{view_id}/delete"' not in page.text
        refused = await other.post(
            f"/inbox/views/{view_id}/delete", data={"csrf_token": agent_csrf}, headers=HTML
        )
        assert refused.status_code == 403 and "Only admins can delete shared views" in refused.text
    page = await client.get("/inbox", headers=HTML)
    assert f'action="/inbox/views/{view_id}/delete"' in page.text


# -- custom fields -------------------------------------------------------------------------------


async def _fields(sessions: async_sessionmaker[Any], *, required: str = "") -> None:
    async with sessions() as session, session.begin():
        for key, label, kind, options in (
            ("order_no", "Order number", "text", []),
            ("weight", "Weight (kg)", "number", []),
            ("ship_date", "Ship date", "date", []),
            ("carrier", "Carrier", "dropdown", ["DHL", "UPS"]),
            ("fragile", "Fragile", "checkbox", []),
        ):
            await custom_fields.create_field(
                session,
                key=key,
                label=label,
                kind=kind,
                options=options,
                required=key == required,
                public=False,
                actor=SYSTEM,
            )


def _controls(page: str, csrf: str) -> dict[str, str]:
    version = re.search(r'name="version" value="(\d+)"', page)
    fields = re.search(r'name="fields" value="([^"]*)"', page)
    assert version and fields
    return {"csrf_token": csrf, "version": version.group(1), "fields": fields.group(1)}


async def test_custom_fields_are_shown_edited_and_cleared(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    db: AsyncSession,
) -> None:
    _, csrf = await _agent(client, make_user)
    await _fields(sessions)
    ticket = await make_ticket(custom={"order_no": "A-17"})
    url = f"/tickets/{ticket.id}"
    page = (await client.get(url, headers=HTML)).text
    assert 'name="custom.order_no" value="A-17"' in page
    assert 'type="number" step="any"' in page and 'type="date"' in page
    assert '<option value="">—</option>' in page and "<option>UPS</option>" in page
    assert 'type="checkbox" id="cf-fragile" name="custom.fragile" value="true"' in page
    assert "Required to solve" not in page

    form = {
        **_controls(page, csrf),
        "custom.order_no": " A-18 ",
        "custom.weight": "2.5",
        "custom.ship_date": "2026-05-01",
        "custom.carrier": "DHL",
        "custom.fragile": "true",
    }
    saved = await client.post(url, data=form)
    assert saved.status_code == 303, saved.text
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None and stored.custom == {
        "order_no": "A-18",
        "weight": 2.5,
        "ship_date": "2026-05-01",
        "carrier": "DHL",
        "fragile": True,
    }
    page = (await client.get(url, headers=HTML)).text
    assert 'value="2.5"' in page and "<option selected>DHL</option>" in page
    assert re.search(r'name="custom.fragile" value="true"\s+checked', page)

    # an unticked box and emptied inputs clear their values; a form without a field leaves it
    cleared = {**_controls(page, csrf), "custom.order_no": "A-18", "custom.weight": "3"}
    cleared["fields"] = "order_no weight ship_date fragile"
    assert (await client.post(url, data=cleared)).status_code == 303
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None and stored.custom == {
        "order_no": "A-18",
        "weight": 3,
        "carrier": "DHL",
    }

    bad = await client.post(
        url, data={**_controls((await client.get(url)).text, csrf), "custom.weight": "heavy"}
    )
    assert bad.status_code == 422 and "Invalid value — Weight (kg): a number" in bad.text
    assert 'name="custom.weight" value="heavy"' in bad.text
    assert 'aria-invalid="true" aria-describedby="cf-weight-problem"' in bad.text


async def test_a_field_required_to_solve_is_marked_and_the_refusal_fixed_on_the_page(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    db: AsyncSession,
) -> None:
    _, csrf = await _agent(client, make_user)
    await _fields(sessions, required="order_no")
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}"
    page = (await client.get(url, headers=HTML)).text
    assert page.count("Required to solve") == 1
    refused = await client.post(
        url, data={**_controls(page, csrf), "status": "solved", "custom.carrier": "UPS"}
    )
    assert refused.status_code == 422
    assert "Fill in the required fields before solving" in refused.text
    assert "— Order number: required to solve" in refused.text
    assert 'id="cf-order_no-problem">required to solve</small>' in refused.text
    # what was typed is still there: the chosen status and the other field
    assert "<option selected>solved</option>" in refused.text
    assert "<option selected>UPS</option>" in refused.text
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None and stored.status == "new" and stored.custom == {}

    # the editor's "Submit as solved" is refused the same way and points at the fields
    sent = await client.post(
        f"{url}/messages", data={"csrf_token": csrf, "body": "Done", "status": "solved"}
    )
    assert sent.status_code == 422 and '<a href="#fields-title">Fill in the fields</a>' in sent.text
    assert await _messages(db, ticket.id) == 1

    fixed = await client.post(
        url,
        data={**_controls(refused.text, csrf), "status": "solved", "custom.order_no": "A-1"},
    )
    assert fixed.status_code == 303
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None and stored.status == "solved" and stored.custom == {"order_no": "A-1"}


# -- attachments in the editor --------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def _attachments(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Attachment)) or 0)


async def test_files_chosen_in_the_editor_go_with_the_reply(
    client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}"
    page = await client.get(url, headers=HTML)
    assert 'enctype="multipart/form-data"' in page.text
    assert 'type="file" id="files" name="files" multiple' in page.text
    sent = await client.post(
        f"{url}/messages",
        data={"csrf_token": csrf, "kind": "reply", "body": "Label and notes attached"},
        files=[
            ("files", ("label.png", PNG, "image/png")),
            ("files", ("notes.txt", b"fragile", "text/plain")),
        ],
    )
    assert sent.status_code == 303, sent.text
    page = await client.get(url, headers=HTML)
    message = page.text[page.text.index("Label and notes attached") :]
    names = re.findall(r'<a href="/api/v1/attachments/\d+" download>([^<]+)</a>', message)
    assert names == ["label.png", "notes.txt"]
    # a browser sends an empty file input as a part with an empty file name: no file
    boundary = "----chromium"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}',
        f'--{boundary}\r\nContent-Disposition: form-data; name="body"\r\n\r\nNo files',
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename=""\r\n'
        "Content-Type: application/octet-stream\r\n\r\n",
    ]
    plain = await client.post(
        f"{url}/messages",
        content=("\r\n".join(parts) + f"\r\n--{boundary}--\r\n").encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert plain.status_code == 303 and await _attachments(db) == 2


async def test_a_blocked_or_oversized_file_sends_nothing(
    app: Any, client: AsyncClient, make_user: Make, make_ticket: Make, db: AsyncSession
) -> None:
    _, csrf = await _agent(client, make_user)
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}/messages"
    form = {"csrf_token": csrf, "kind": "note", "body": "Here & there"}
    blocked = await client.post(
        url,
        data=form,
        files=[
            ("files", ("label.png", PNG, "image/png")),
            ("files", ("tool.exe", b"MZ\x90\x00", "application/octet-stream")),
        ],
    )
    assert blocked.status_code == 415
    assert "tool.exe: exe files are not accepted" in blocked.text
    assert "Choose the files again." in blocked.text
    assert "Here &amp; there</textarea>" in blocked.text and 'value="note" checked' in blocked.text

    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"max_attachment_bytes": 32})
    large = await client.post(url, data=form, files=[("files", ("label.png", PNG, "image/png"))])
    assert large.status_code == 413
    assert "label.png: The file is larger than 32 bytes" in large.text
    assert await _messages(db, ticket.id) == 1 and await _attachments(db) == 0


# -- macros in the editor --------------------------------------------------------------------------


async def test_a_macro_fills_the_editor_and_runs_its_actions_with_the_edited_reply(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    make_customer: Make,
    sessions: async_sessionmaker[Any],
    db: AsyncSession,
    lent: workspace.Sources,
) -> None:
    agent, csrf = await _agent(client, make_user, name="Nora Quinn")
    other = await make_user("agent")
    async with sessions() as session, session.begin():
        refund = await macros.create_macro(
            session,
            name="Refund sent",
            body="Hi {{customer.first_name}}, the refund for #{{ticket.number}} is on its way.",
            public=True,
            actions=[
                {"type": "add_tags", "value": ["refund"]},
                {"type": "set_priority", "value": "low"},
            ],
            shared=False,
            owner_id=agent.id,
            is_admin=False,
            actor=SYSTEM,
        )
        await macros.create_macro(
            session,
            name="Someone else's",
            body="Not mine",
            public=True,
            actions=[],
            shared=False,
            owner_id=other.id,
            is_admin=False,
            actor=SYSTEM,
        )
    dana = await make_customer("Dana Fox")
    ticket = await make_ticket("Refund", requester=dana)
    url = f"/tickets/{ticket.id}"
    page = (await client.get(url, headers=HTML)).text
    assert f'<option value="{refund.id}">Refund sent</option>' in page
    assert "Someone else" not in page

    shown = await client.get(f"{url}/macros/{refund.id}")
    assert shown.status_code == 200
    assert shown.json() == {
        "body": f"Hi Dana, the refund for #{ticket.id} is on its way.",
        "kind": "reply",
    }
    sent = await client.post(
        f"{url}/messages",
        data={
            "csrf_token": csrf,
            "macro_id": str(refund.id),
            "kind": "reply",
            "body": "Hi Dana, the refund is on its way (3 days).",
            "status": "pending",
        },
        files=[("files", ("receipt.pdf", b"%PDF-1.4 receipt", "application/pdf"))],
    )
    assert sent.status_code == 303, sent.text
    page = (await client.get(url, headers=HTML)).text
    assert "Macro “Refund sent” applied." in page
    assert "the refund is on its way (3 days)." in page and ">receipt.pdf</a>" in page
    stored = await db.get(Ticket, ticket.id, populate_existing=True)
    assert stored is not None
    assert (stored.tags, stored.priority, stored.status) == (["refund"], "low", "pending")
    foreign = await client.get(f"{url}/macros/{refund.id + 1}", headers=HTML)
    assert foreign.status_code == 404


async def test_a_refused_macro_keeps_the_edited_reply_and_the_choice(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
    db: AsyncSession,
    lent: workspace.Sources,
) -> None:
    agent, csrf = await _agent(client, make_user)
    async with sessions() as session, session.begin():
        close = await macros.create_macro(
            session,
            name="Close",
            body="Closing this.",
            public=True,
            actions=[{"type": "set_status", "value": "closed"}],
            shared=True,
            owner_id=agent.id,
            is_admin=True,
            actor=SYSTEM,
        )
    ticket = await make_ticket()
    refused = await client.post(
        f"/tickets/{ticket.id}/messages",
        data={"csrf_token": csrf, "macro_id": str(close.id), "body": "Closing, sorry <3"},
    )
    assert refused.status_code == 409 and "cannot become closed" in refused.text
    assert "Closing, sorry &lt;3</textarea>" in refused.text
    assert f'<option value="{close.id}" selected>Close</option>' in refused.text
    assert await _messages(db, ticket.id) == 1


async def test_names_values_and_views_typed_by_people_are_escaped(
    app: Any,
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[Any],
) -> None:
    _, csrf = await _agent(client, make_user)
    await _fields(sessions)
    ticket = await make_ticket()
    url = f"/tickets/{ticket.id}"
    saved = await client.post(
        "/inbox/views", data={"csrf_token": csrf, "name": SCRIPT, "view": "all-open"}
    )
    assert saved.status_code == 303
    page = await client.get("/inbox", headers=HTML)
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    form = {**_controls((await client.get(url)).text, csrf), "custom.order_no": SCRIPT}
    assert (await client.post(url, data=form)).status_code == 303
    page = await client.get(url, headers=HTML)
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as other:
        sly = await make_user("agent", name=SCRIPT)
        await other.post(f"{url}/presence", data={"csrf_token": await sign_in(other, sly.email)})
    told = await client.post(f"{url}/presence", data={"csrf_token": csrf})
    assert "<script>alert" not in told.text and "&lt;script&gt;alert" in told.text


def test_time_left_reads_like_agents_say_it() -> None:
    assert [workspace.span(m) for m in (0.4, 1, 35, 60, 130, 1440, 1500, 4000)] == [
        "< 1 m",
        "1 m",
        "35 m",
        "1 h",
        "2 h 10 m",
        "1 d",
        "1 d 1 h",
        "2 d 18 h",
    ]


async def test_a_mail_that_could_not_be_delivered_shows_on_the_ticket(
    client: AsyncClient,
    make_user: Make,
    make_ticket: Make,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from servicecycle.events import service as events

    await _agent(client, make_user)
    ticket = await make_ticket("Where is my parcel?")
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert "could not be delivered" not in page.text
    async with sessions() as session, session.begin():
        await events.record(
            session,
            "mail.failed",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=Actor.system("email"),
            data={
                "outbound_id": 1,
                "kind": "reply",
                "to": "dana@example.net",
                "attempts": 1,
                "error": f"550 5.1.1 mailbox unknown {SCRIPT}",
            },
        )
    page = await client.get(f"/tickets/{ticket.id}", headers=HTML)
    assert "A reply\n  to <strong>dana@example.net</strong> could not be delivered" in page.text
    assert "after 1 attempt)" in page.text and "550 5.1.1 mailbox unknown" in page.text
    assert SCRIPT not in page.text


async def test_quoted_history_folds_away_on_the_page_and_stays_whole_in_the_api(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    await _agent(client, make_user, name="Fold Agent")
    reply = (
        "Thanks, the new code worked.\n\n"
        "On Tue, 1 Dec 2026 at 10:00, Help Desk <help@desk.test> wrote:\n"
        "> Please try the code ZX-41.\n> Help Desk"
    )
    ticket = await make_ticket("Code does not work", body=reply)
    page = (await client.get(f"/tickets/{ticket.id}", headers=HTML)).text
    body = re.search(r'<div class="message-body">(.*?)</div>\s*</article>', page, re.S)
    assert body is not None
    new, _, folded = body.group(1).partition('<details class="quoted">')
    assert "Thanks, the new code worked." in new and "ZX-41" not in new
    assert "wrote:" in folded and "Please try the code ZX-41." in folded
    # the stored body keeps the quote
    messages = (await client.get(f"/api/v1/tickets/{ticket.id}/messages")).json()
    assert "ZX-41" in messages[0]["body_html"]
