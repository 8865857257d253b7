"""What a signed-in customer sees and does: their own requests, the public thread, replies,
new requests with public fields and files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from servicecycle.customers import service as customers
from servicecycle.events.service import Actor
from servicecycle.portal import service as portal
from servicecycle.tickets import custom_fields
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Attachment, AttachmentBlob, Message, Ticket
from tests.factories import Token
from tests.portal.conftest import Sessions, hidden, sign_in

MakeCustomer = Callable[..., Awaitable[Any]]
MakeTicket = Callable[..., Awaitable[Any]]
MakeToken = Callable[..., Awaitable[Token]]
SYSTEM = Actor.system("test")


async def _field(sessions: Sessions, key: str, *, public: bool, kind: str = "text") -> None:
    async with sessions() as session, session.begin():
        await custom_fields.create_field(
            session,
            key=key,
            label=key.replace("_", " ").title(),
            kind=kind,
            options=[],
            required=False,
            public=public,
            actor=SYSTEM,
        )


async def _count(sessions: Sessions, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_my_requests_shows_only_my_own(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    me = await make_customer("Ann", email="ann@example.com")
    other = await make_customer("Bob", email="bob@example.com")
    await make_ticket("Printer on fire", requester=me)
    await make_ticket("Secret merger plans", requester=other)
    await sign_in(client, sessions, "ann@example.com")
    page = await client.get("/portal/requests")
    assert "Printer on fire" in page.text and "Secret merger plans" not in page.text


async def test_a_sharing_company_sees_its_colleagues_requests(
    client: AsyncClient,
    sessions: Sessions,
    make_customer: MakeCustomer,
    make_ticket: MakeTicket,
    make_token: MakeToken,
) -> None:
    async with sessions() as session, session.begin():
        company = await customers.create_company(
            session, name="Acme", domain="acme.example", tier="standard", actor=SYSTEM
        )
        ann = await customers.create_customer(
            session, name="Ann", emails=["ann@acme.example"], company_id=company.id, actor=SYSTEM
        )
        cid = await customers.create_customer(
            session, name="Cid", emails=["cid@acme.example"], company_id=company.id, actor=SYSTEM
        )
    colleague = await make_ticket("Invoice 42 is wrong", requester=cid)
    await sign_in(client, sessions, "ann@acme.example")
    assert "Invoice 42" not in (await client.get("/portal/requests")).text
    assert (await client.get(f"/portal/requests/{colleague.id}")).status_code == 404

    admin = await make_token("admin")
    shared = await client.put(
        f"/api/v1/portal/companies/{company.id}", json={"shared": True}, headers=admin.headers
    )
    assert shared.status_code == 200
    page = await client.get("/portal/requests")
    assert "Invoice 42" in page.text and "by a colleague" in page.text
    assert (await client.get(f"/portal/requests/{colleague.id}")).status_code == 200
    assert ann.id != cid.id


async def test_another_customers_request_is_404_and_reveals_nothing(
    client: AsyncClient,
    sessions: Sessions,
    make_customer: MakeCustomer,
    make_ticket: MakeTicket,
) -> None:
    await make_customer(email="me@example.com")
    stranger = await make_customer("Zed Stranger", email="zed@example.com")
    theirs = await make_ticket(
        "Zed's private matter", requester=stranger, body="my account number is 7314-2286"
    )
    signed = await sign_in(client, sessions, "me@example.com")
    for url in (f"/portal/requests/{theirs.id}", "/portal/requests/999999"):
        page = await client.get(url)
        assert page.status_code == 404
        assert "There is no such request." in page.text
        for secret in ("Zed", "private matter", "7314-2286", "zed@example.com"):
            assert secret not in page.text.replace("999999", "")
    reply = await client.post(
        f"/portal/requests/{theirs.id}/replies", data={"body": "hijack", "csrf_token": signed.csrf}
    )
    assert reply.status_code == 404 and "Zed" not in reply.text
    async with sessions() as session:
        thread = await tickets.thread(session, await tickets.get_ticket(session, theirs.id))
    assert [m.body_text for m in thread] == ["my account number is 7314-2286"]


async def test_internal_notes_are_never_shown(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    me = await make_customer(email="notes@example.com")
    ticket = await make_ticket("Slow delivery", requester=me)
    async with sessions() as session, session.begin():
        loaded = await tickets.get_ticket(session, ticket.id)
        await tickets.add_message(
            session,
            loaded,
            public=False,
            author_type="agent",
            body_text="customer is VIP, careful",
            actor=SYSTEM,
        )
        await tickets.add_message(
            session,
            loaded,
            public=True,
            author_type="agent",
            body_text="It ships today.",
            actor=SYSTEM,
        )
    await sign_in(client, sessions, "notes@example.com")
    page = await client.get(f"/portal/requests/{ticket.id}")
    assert "It ships today." in page.text and "Support team" in page.text
    assert "VIP" not in page.text


async def test_a_reply_reopens_a_solved_request(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    me = await make_customer(email="again@example.com")
    ticket = await make_ticket("Broken hinge", requester=me)
    async with sessions() as session, session.begin():
        loaded = await tickets.get_ticket(session, ticket.id)
        await tickets.set_status(session, loaded, "solved", actor=SYSTEM)
    signed = await sign_in(client, sessions, "again@example.com")
    assert "Reopen with a reply" in (await client.get(f"/portal/requests/{ticket.id}")).text
    sent = await client.post(
        f"/portal/requests/{ticket.id}/replies",
        data={"body": "It broke again.", "csrf_token": signed.csrf},
    )
    assert sent.status_code == 303
    async with sessions() as session:
        loaded = await tickets.get_ticket(session, ticket.id)
        last = (await tickets.thread(session, loaded))[-1]
    assert loaded.status == "open"
    assert (last.author_type, last.author_customer_id, last.public) == ("customer", me.id, True)


async def test_a_new_request_with_a_public_field_and_a_file(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    me = await make_customer(email="new@example.com")
    await _field(sessions, "order_number", public=True)
    await _field(sessions, "internal_score", public=False, kind="number")
    signed = await sign_in(client, sessions, "new@example.com")
    form = await client.get("/portal/requests/new")
    assert "Order Number" in form.text and "Internal Score" not in form.text
    sent = await client.post(
        "/portal/requests",
        data={
            "subject": "Wrong size",
            "description": "I got an M, ordered an L.",
            "custom.order_number": "A-77",
            "csrf_token": signed.csrf,
        },
        files={"files": ("receipt.txt", b"order A-77", "text/plain")},
    )
    assert sent.status_code == 303, sent.text
    ticket_id = int(sent.headers["location"].rsplit("/", 1)[1])
    async with sessions() as session:
        ticket = await tickets.get_ticket(session, ticket_id)
        [first] = await tickets.thread(session, ticket)
        files = await session.scalars(select(Attachment).where(Attachment.message_id == first.id))
        names = [a.filename for a in files]
    assert (ticket.channel, ticket.requester_id, ticket.custom) == (
        "portal",
        me.id,
        {"order_number": "A-77"},
    )
    assert names == ["receipt.txt"]
    page = await client.get(f"/portal/requests/{ticket_id}")
    assert "receipt.txt" in page.text
    [attachment_id] = [int(part.split('"')[0]) for part in page.text.split("/files/")[1:]]
    download = await client.get(f"/portal/requests/{ticket_id}/files/{attachment_id}")
    assert download.status_code == 200 and download.content == b"order A-77"

    # someone else can reach the file neither through this request nor through their own
    client.cookies.clear()
    await make_customer(email="other@example.com")
    await sign_in(client, sessions, "other@example.com")
    theirs = await client.post(
        "/portal/requests",
        data={
            "subject": "Mine",
            "description": "x",
            "csrf_token": hidden((await client.get("/portal/requests")).text),
        },
    )
    their_id = int(theirs.headers["location"].rsplit("/", 1)[1])
    for url in (
        f"/portal/requests/{ticket_id}/files/{attachment_id}",
        f"/portal/requests/{their_id}/files/{attachment_id}",
    ):
        refused = await client.get(url)
        assert refused.status_code == 404 and b"order A-77" not in refused.content


async def test_unknown_or_internal_fields_are_refused_by_name(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer(email="field@example.com")
    await _field(sessions, "internal_score", public=False, kind="number")
    signed = await sign_in(client, sessions, "field@example.com")
    before = await _count(sessions, Ticket)
    for key in ("no_such_field", "internal_score"):
        sent = await client.post(
            "/portal/requests",
            data={
                "subject": "Hi",
                "description": "x",
                f"custom.{key}": "1",
                "csrf_token": signed.csrf,
            },
        )
        assert sent.status_code == 422 and f"custom.{key}" in sent.text
    assert await _count(sessions, Ticket) == before


async def test_an_oversized_file_is_413_and_nothing_is_stored(
    client: AsyncClient,
    sessions: Sessions,
    make_customer: MakeCustomer,
    make_ticket: MakeTicket,
    app: Any,
) -> None:
    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"max_attachment_bytes": 1000})
    me = await make_customer(email="big@example.com")
    ticket = await make_ticket("Photo", requester=me)
    signed = await sign_in(client, sessions, "big@example.com")
    counts = [await _count(sessions, m) for m in (Ticket, Message, Attachment, AttachmentBlob)]
    new = await client.post(
        "/portal/requests",
        data={"subject": "Big", "description": "see file", "csrf_token": signed.csrf},
        files={"files": ("photo.txt", b"x" * 1001, "text/plain")},
    )
    assert new.status_code == 413 and "larger than 1,000 bytes" in new.text
    reply = await client.post(
        f"/portal/requests/{ticket.id}/replies",
        data={"body": "here", "csrf_token": signed.csrf},
        files={"files": ("photo.txt", b"x" * 1001, "text/plain")},
    )
    assert reply.status_code == 413 and "larger than 1,000 bytes" in reply.text
    bad = await client.post(
        f"/portal/requests/{ticket.id}/replies",
        data={"body": "here", "csrf_token": signed.csrf},
        files={"files": ("run.exe", b"MZ...", "application/octet-stream")},
    )
    assert bad.status_code == 415
    after = [await _count(sessions, m) for m in (Ticket, Message, Attachment, AttachmentBlob)]
    assert after == counts


async def test_pages_need_a_signed_in_customer(client: AsyncClient) -> None:
    for url in (
        "/portal/requests",
        "/portal/requests/new",
        "/portal/requests/1001",
        "/portal/account",
    ):
        response = await client.get(url)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/portal?next="
        )


async def test_shared_company_needs_an_admin(client: AsyncClient, make_token: MakeToken) -> None:
    agent = await make_token("agent")
    response = await client.put(
        "/api/v1/portal/companies/1", json={"shared": True}, headers=agent.headers
    )
    assert response.status_code == 403
    assert portal.PORTAL.type == "system"


async def test_a_merged_request_leads_to_where_it_went_only_if_that_is_mine(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_ticket: MakeTicket
) -> None:
    from servicecycle.tickets import merging

    me = await make_customer(email="merge@example.com")
    first = await make_ticket("First", requester=me)
    second = await make_ticket("Second", requester=me)
    third = await make_ticket("Mine, then merged away", requester=me)
    strangers = await make_ticket("Stranger's", requester=await make_customer("Vera"))
    async with sessions() as session, session.begin():
        get = tickets.get_ticket
        await merging.merge(
            session, await get(session, first.id), await get(session, second.id), actor=SYSTEM
        )
        await merging.merge(
            session, await get(session, third.id), await get(session, strangers.id), actor=SYSTEM
        )
    await sign_in(client, sessions, "merge@example.com")
    moved = await client.get(f"/portal/requests/{first.id}")
    assert moved.status_code == 303 and moved.headers["location"] == f"/portal/requests/{second.id}"
    hidden_away = await client.get(f"/portal/requests/{third.id}")
    assert hidden_away.status_code == 404 and "Vera" not in hidden_away.text
