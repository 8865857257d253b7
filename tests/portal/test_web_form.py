"""The public request form at /support: no account, a honeypot, a rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import func, select

from servicecycle.channels.models import OutboundMail
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor
from servicecycle.tickets import custom_fields
from servicecycle.tickets.models import Ticket
from tests.portal.conftest import Sessions, hidden

MakeCustomer = Callable[..., Awaitable[Any]]


async def send(client: AsyncClient, **fields: str) -> Response:
    page = await client.get("/support")
    assert page.status_code == 200
    data = {
        "name": "Robin Diaz",
        "email": "robin@example.com",
        "subject": "Cannot log in",
        "description": "The app says my password is wrong.",
        "csrf_token": hidden(page.text),
        **fields,
    }
    return await client.post("/support", data=data)


async def _counts(sessions: Sessions) -> tuple[int, int, int]:
    async with sessions() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(Ticket)) or 0),
            int(await session.scalar(select(func.count()).select_from(Customer)) or 0),
            int(await session.scalar(select(func.count()).select_from(OutboundMail)) or 0),
        )


async def test_the_form_opens_a_web_ticket_for_a_new_customer_and_acknowledges_it(
    client: AsyncClient, sessions: Sessions
) -> None:
    async with sessions() as session, session.begin():
        await custom_fields.create_field(
            session,
            key="device",
            label="Device",
            kind="dropdown",
            options=["iOS", "Android"],
            required=False,
            public=True,
            actor=Actor.system("test"),
        )
    assert "Device" in (await client.get("/support")).text
    sent = await send(client, **{"custom.device": "iOS"})
    assert sent.status_code == 200 and "We have your request" in sent.text
    async with sessions() as session:
        customer = await customers.find_by_identity(session, "email", "robin@example.com")
        assert customer is not None and customer.name == "Robin Diaz"
        ticket = await session.scalar(select(Ticket).where(Ticket.requester_id == customer.id))
        assert ticket is not None
        assert (ticket.channel, ticket.subject, ticket.custom) == (
            "web",
            "Cannot log in",
            {"device": "iOS"},
        )
        ack = await session.scalar(select(OutboundMail).where(OutboundMail.ticket_id == ticket.id))
    assert ack is not None and ack.kind == "acknowledgement"
    assert ack.to_address == "robin@example.com"


async def test_a_known_address_finds_its_customer(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    known = await make_customer("Robin Known", email="robin@example.com")
    assert (await send(client, name="Someone Else")).status_code == 200
    async with sessions() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.requester_id == known.id))
        assert ticket is not None
        assert (await customers.get_customer(session, known.id)).name == "Robin Known"


async def test_a_filled_honeypot_pretends_success_and_stores_nothing(
    client: AsyncClient, sessions: Sessions
) -> None:
    before = await _counts(sessions)
    sent = await send(client, website="http://spam.example")
    assert sent.status_code == 200 and "We have your request" in sent.text
    assert await _counts(sessions) == before


async def test_the_form_is_rate_limited_per_ip(client: AsyncClient, sessions: Sessions) -> None:
    for n in range(5):
        assert (await send(client, subject=f"Try {n}")).status_code == 200
    refused = await send(client, subject="Try 6")
    assert refused.status_code == 429 and "Too many requests" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert (await _counts(sessions))[0] == 5


async def test_bad_input_is_refused_by_name_and_nothing_is_kept(
    client: AsyncClient, sessions: Sessions
) -> None:
    before = await _counts(sessions)
    for fields, name in (
        ({"email": "not-an-address"}, "email"),
        ({"subject": "  "}, "subject"),
        ({"custom.secret": "x"}, "custom.secret"),
        ({"name": " "}, "name"),
    ):
        sent = await send(client, **fields)
        assert sent.status_code == 422 and name in sent.text, (fields, sent.text)
        assert 'value="Robin Diaz"' in sent.text or name == "name"  # the form keeps what was typed
    assert await _counts(sessions) == before
    forged = await client.post("/support", data={"name": "x", "email": "x@example.com"})
    assert forged.status_code == 400


async def test_portal_new_sends_the_signed_out_to_the_public_form(client: AsyncClient) -> None:
    response = await client.get("/portal/new")
    assert response.status_code == 303 and response.headers["location"] == "/support"
