from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit.errors import Conflict, ValidationFailed
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
ACTOR = Actor.system("test")


async def test_identities_are_normalised_and_unique(db: AsyncSession) -> None:
    dana = await customers.create_customer(
        db, name="Dana", emails=["Dana@Example.NET"], phones=["+44 (20) 7946-0018"], actor=ACTOR
    )
    found = await customers.find_by_identity(db, "email", "dana@example.net")
    assert found is not None and found.id == dana.id
    by_phone = await customers.find_by_identity(db, "phone", "+442079460018")
    assert by_phone is not None and by_phone.id == dana.id
    with pytest.raises(Conflict) as caught:
        await customers.create_customer(db, name="Other", emails=["DANA@example.net"], actor=ACTOR)
    assert caught.value.fields == {"emails": "dana@example.net is taken"}


async def test_bad_identities_name_the_field(db: AsyncSession) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await customers.create_customer(db, name="X", emails=["nope"], actor=ACTOR)
    assert "email" in caught.value.fields
    with pytest.raises(ValidationFailed):
        await customers.create_customer(db, name="X", phones=["call me"], actor=ACTOR)


async def test_unknown_sender_becomes_a_customer_once(db: AsyncSession) -> None:
    first = await customers.find_or_create_by_email(
        db, email="new@example.org", name="", actor=ACTOR
    )
    again = await customers.find_or_create_by_email(
        db, email="NEW@example.org", name="Newt", actor=ACTOR
    )
    assert first.id == again.id and first.name == "new"


async def test_search_by_name_or_identity_fragment(db: AsyncSession) -> None:
    await customers.create_customer(
        db, name="Zebediah Quill", emails=["zq@quill.example"], actor=ACTOR
    )
    await customers.create_customer(
        db, name="Other Person", emails=["op@else.example"], actor=ACTOR
    )
    assert [c.name for c in (await customers.list_customers(db, query="zebed")).items] == [
        "Zebediah Quill"
    ]
    assert [c.name for c in (await customers.list_customers(db, query="quill.exa")).items] == [
        "Zebediah Quill"
    ]


async def test_api_creates_updates_and_refuses_bad_input(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    agent = await make_token("agent")
    created = await client.post(
        "/api/v1/customers",
        headers=agent.headers,
        json={
            "name": "Ivy",
            "emails": ["ivy@example.com"],
            "tier": "vip",
            "tags": ["Wholesale", "wholesale"],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["identities"] == [{"kind": "email", "value": "ivy@example.com"}]
    assert body["tags"] == ["wholesale"]
    url = f"/api/v1/customers/{body['id']}"
    patched = await client.patch(
        url, headers=agent.headers, json={"notes": "Prefers phone", "version": 1}
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2
    stale = await client.patch(url, headers=agent.headers, json={"notes": "lost?", "version": 1})
    assert stale.status_code == 412
    wrong = await client.post(
        "/api/v1/customers", headers=agent.headers, json={"name": "X", "colour": 1}
    )
    assert wrong.status_code == 422 and "colour" in wrong.json()["error"]["fields"]
    taken = await client.post(
        "/api/v1/customers",
        headers=agent.headers,
        json={"name": "Y", "emails": ["IVY@example.com"]},
    )
    assert taken.status_code == 409 and taken.json()["error"]["customer_id"] == body["id"]
    timeline = await events.query(db, subject_type="customer", subject_id=body["id"])
    assert [e.kind for e in timeline.items] == ["customer.updated", "customer.created"]


async def test_merge_moves_identities_and_tickets(
    client: AsyncClient,
    make_token: MakeToken,
    make_customer: Callable[..., Awaitable[Any]],
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    agent = await make_token("agent")
    keep = await make_customer("Keep", email="keep@example.com")
    dupe = await make_customer("Dupe", email="dupe@example.com")
    ticket = await make_ticket(requester=dupe)
    merged = await client.post(
        f"/api/v1/customers/{dupe.id}/merge", headers=agent.headers, json={"into_id": keep.id}
    )
    assert merged.status_code == 200, merged.text
    assert {i["value"] for i in merged.json()["identities"]} == {
        "keep@example.com",
        "dupe@example.com",
    }
    moved = await client.get(f"/api/v1/tickets/{ticket.id}", headers=agent.headers)
    assert moved.json()["requester_id"] == keep.id
    itself = await client.post(
        f"/api/v1/customers/{keep.id}/merge", headers=agent.headers, json={"into_id": keep.id}
    )
    assert itself.status_code == 422
    again = await client.post(
        f"/api/v1/customers/{dupe.id}/merge", headers=agent.headers, json={"into_id": keep.id}
    )
    assert again.status_code == 409


async def test_identities_companies_and_listing_through_the_api(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    company = await client.post(
        "/api/v1/companies",
        headers=agent.headers,
        json={"name": "Acme Ltd", "domain": "ACME.example", "tier": "enterprise"},
    )
    assert company.status_code == 201 and company.json()["domain"] == "acme.example"
    twin = await client.post("/api/v1/companies", headers=agent.headers, json={"name": "acme ltd"})
    assert twin.status_code == 409
    person = (
        await client.post(
            "/api/v1/customers",
            headers=agent.headers,
            json={
                "name": "Rae",
                "emails": ["rae@acme.example"],
                "company_id": company.json()["id"],
            },
        )
    ).json()
    added = await client.post(
        f"/api/v1/customers/{person['id']}/identities",
        headers=agent.headers,
        json={"kind": "phone", "value": "+1 555 0100"},
    )
    assert added.status_code == 201
    assert {"kind": "phone", "value": "+15550100"} in added.json()["identities"]
    bad_kind = await client.post(
        f"/api/v1/customers/{person['id']}/identities",
        headers=agent.headers,
        json={"kind": "fax", "value": "1"},
    )
    assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["error"]["fields"]
    found = await client.get("/api/v1/customers", headers=agent.headers, params={"q": "555 01"})
    assert found.status_code == 200
    listed = await client.get("/api/v1/customers", headers=agent.headers, params={"q": "rae@acme"})
    assert [c["id"] for c in listed.json()["items"]] == [person["id"]]
    companies = (await client.get("/api/v1/companies", headers=agent.headers)).json()
    assert [c["name"] for c in companies] == ["Acme Ltd"]
    missing = await client.get("/api/v1/customers/99999999", headers=agent.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    ghost_company = await client.post(
        "/api/v1/customers", headers=agent.headers, json={"name": "G", "company_id": 99999999}
    )
    assert (
        ghost_company.status_code == 422 and "company_id" in ghost_company.json()["error"]["fields"]
    )


async def test_the_timeline_tells_mail_chat_follow_ups_and_surveys_in_words(
    client: AsyncClient,
    make_user: Callable[..., Awaitable[Any]],
    make_ticket: Callable[..., Awaitable[Any]],
    sessions: Any,
) -> None:
    from tests.factories import sign_in

    agent = await make_user("agent")
    await sign_in(client, agent.email)
    ticket = await make_ticket("Broken zip")
    lines = [
        ("mail.queued", {"kind": "acknowledgement", "to": "x@example.net", "promised": "by noon"}),
        ("chat.started", {}),
        ("sla.policy_applied", {"policy": "VIP", "started": ["first_reply", "resolution"]}),
        ("sla.breached", {"metric": "first_reply"}),
        (
            "follow_up.created",
            {"kind": "check_in", "reason": "Did the zip hold?", "follow_up_id": 4},
        ),
        ("survey.scheduled", {"kind": "nps", "due_at": "2026-03-02T10:00:00+00:00"}),
        ("survey.skipped", {"reason": "throttled", "detail": "surveyed 3 days ago"}),
        ("survey.sent", {"kind": "nps"}),
        ("survey.answered", {"kind": "nps", "score": 3, "detractor": True}),
        ("mail.sent", {"kind": "reply"}),
        ("mail.failed", {"to": "x@example.net", "error": "550 <b>no such user</b>"}),
    ]
    async with sessions() as session, session.begin():
        for kind, data in lines:
            await events.record(
                session,
                kind,
                subject_type="ticket",
                subject_id=ticket.id,
                actor=Actor.system("test"),
                data=data,
            )
    page = await client.get(f"/customers/{ticket.requester_id}", headers={"accept": "text/html"})
    text = " ".join(page.text.split())
    assert "An acknowledgement was sent to x@example.net, promising an answer by noon" in text
    assert "started a live chat" in text
    assert "The SLA policy “VIP” applies: first reply, resolution timed" in text
    assert "The first reply target was <strong>missed</strong>" in text
    assert "planned a check-in follow-up: “Did the zip hold?”" in text
    assert 'href="/follow-ups/4"' in text
    assert "answered the NPS survey: <strong>3</strong> (unhappy)" in text
    assert "The NPS survey was sent to the customer" in text
    assert "A survey was not sent: surveyed 3 days ago" in text
    # bookkeeping another line already tells is left out, and no event shows as its code
    assert 'data-kind="survey.scheduled"' not in text and 'data-kind="mail.sent"' not in text
    assert "<code>" not in text
    assert "<b>no such user</b>" not in page.text and "&lt;b&gt;no such user" in page.text


async def test_a_batch_makes_what_one_at_a_time_makes(db: AsyncSession) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from servicecycle.customers.models import Customer, CustomerIdentity

    company = await customers.create_company(
        db, name="Batch & Co", domain="batch.example", tier="gold", actor=ACTOR
    )
    at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    made = await customers.create_customers(
        db,
        [
            customers.NewCustomer(
                name=" Ada ",
                emails=["Ada@Batch.example"],
                company_id=company.id,
                tier="gold",
                at=at,
            ),
            customers.NewCustomer(
                name="", emails=["bob@batch.example"], phones=["+1 555 0100"], tags=["VIP", "vip"]
            ),
        ],
        actor=ACTOR,
    )
    single = await customers.create_customer(
        db,
        name="Ada",
        emails=["ada2@batch.example"],
        company_id=company.id,
        tier="gold",
        actor=ACTOR,
    )
    ada, bob = made
    assert (ada.name, ada.company_id, ada.tier, ada.created_at) == ("Ada", company.id, "gold", at)
    assert (bob.name, bob.tags, bob.tier) == ("bob", ["vip"], "standard")
    assert (single.name, single.company_id, single.tier) == ("Ada", company.id, "gold")
    rows = (
        await db.execute(
            select(CustomerIdentity.customer_id, CustomerIdentity.kind, CustomerIdentity.value)
            .where(CustomerIdentity.customer_id.in_([ada.id, bob.id]))
            .order_by(CustomerIdentity.id)
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        (ada.id, "email", "ada@batch.example"),
        (bob.id, "email", "bob@batch.example"),
        (bob.id, "phone", "+15550100"),
    ]
    for person, identities in (
        (ada, ["ada@batch.example"]),
        (bob, ["bob@batch.example", "+15550100"]),
    ):
        (created,) = (await events.query(db, subject_type="customer", subject_id=person.id)).items
        assert created.kind == "customer.created"
        assert created.data == {"name": person.name, "identities": identities}
    (ada_event,) = (await events.query(db, subject_type="customer", subject_id=ada.id)).items
    assert ada_event.occurred_at == at
    assert await db.scalar(select(Customer.id).where(Customer.name == "bob")) == bob.id


@pytest.mark.parametrize(
    ("second", "error", "field"),
    [
        (customers.NewCustomer(name="X", emails=["not an address"]), ValidationFailed, "email"),
        (customers.NewCustomer(name="X", emails=["first@refuse.example"]), Conflict, "emails"),
        (customers.NewCustomer(name="X", emails=["held@refuse.example"]), Conflict, "emails"),
        (customers.NewCustomer(name="X", company_id=987654321), ValidationFailed, "company_id"),
        (customers.NewCustomer(name="  "), ValidationFailed, "name"),
    ],
)
async def test_a_batch_with_a_bad_item_names_it_and_writes_nothing(
    db: AsyncSession, second: customers.NewCustomer, error: type[Exception], field: str
) -> None:
    from sqlalchemy import func, select

    from servicecycle.customers.models import Customer

    held = await customers.create_customer(
        db, name="Holder", emails=["held@refuse.example"], actor=ACTOR
    )
    before = await db.scalar(select(func.count()).select_from(Customer))
    batch = [customers.NewCustomer(name="First", emails=["first@refuse.example"]), second]
    with pytest.raises(error) as caught:
        await customers.create_customers(db, batch, actor=ACTOR)
    exc = caught.value
    assert isinstance(exc, ValidationFailed | Conflict)
    assert exc.extra["item"] == 1
    assert exc.message.startswith(f"Item 1 (customer {second.name!r}): ")
    assert field in exc.fields and exc.message.endswith("Nothing was written.")
    if "held@" in str(second.emails):
        assert exc.extra["customer_id"] == held.id
    assert await db.scalar(select(func.count()).select_from(Customer)) == before


async def test_one_customers_error_is_said_as_it_was_whatever_the_name(db: AsyncSession) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await customers.create_customer(db, name="Bob (VIP): Jane", tags=["a" * 81], actor=ACTOR)
    assert caught.value.message == "Tag too long"
    assert "item" not in caught.value.extra
