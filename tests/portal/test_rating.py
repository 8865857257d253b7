"""Rating a solved request in the portal: the form under the request, and the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from servicecycle.customers import service as customers
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.portal import service as portal
from servicecycle.surveys import service as surveys
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import service as tickets
from tests.portal.conftest import Sessions, sign_in
from tests.portal.test_api import _customer_token

Make = Callable[..., Awaitable[Any]]
ADMIN = Actor.system("test")


async def _surveys(sessions: Sessions, *kinds: str, rule: bool = False) -> None:
    async with sessions() as session, session.begin():
        for kind in kinds:
            survey = await surveys.create_survey(
                session, name=f"{kind} after service", kind=kind, enabled=True, actor=ADMIN
            )
            if rule:
                await surveys.create_rule(session, survey, delay_hours=24, actor=ADMIN)


async def _solve(sessions: Sessions, ticket_id: int) -> None:
    async with sessions() as session, session.begin():
        ticket = await tickets.get_ticket(session, ticket_id)
        await tickets.set_status(session, ticket, "solved", actor=ADMIN)


async def _answers(sessions: Sessions) -> list[SurveyResponse]:
    async with sessions() as session:
        return list((await session.scalars(select(SurveyResponse).order_by("id"))).all())


async def _nothing_stored(sessions: Sessions) -> None:
    """No answer, no invitation and no survey event on a ticket: a refusal writes nothing."""
    assert await _answers(sessions) == []
    async with sessions() as session:
        assert (await session.scalars(select(SurveyInvitation))).all() == []
        on_tickets = select(Event).where(
            Event.kind.like("survey.%"), Event.subject_type == "ticket"
        )
        assert (await session.scalars(on_tickets)).all() == []


async def test_the_customer_rates_their_solved_request_on_its_page(
    client: AsyncClient, sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _surveys(sessions, "csat", "nps")
    me = await make_customer("Ann", email="ann@example.com")
    mine = await make_ticket("Printer on fire", requester=me)
    signed = await sign_in(client, sessions, "ann@example.com")

    # not solved yet: no form, and a post is not recorded
    page = await client.get(f"/portal/requests/{mine.id}")
    assert page.status_code == 200 and "How did we do?" not in page.text
    early = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "csat", "score": "5"},
    )
    assert early.status_code == 409
    assert "You can rate a request once it is solved" in early.text
    await _nothing_stored(sessions)

    await _solve(sessions, mine.id)
    page = await client.get(f"/portal/requests/{mine.id}")
    assert "How did we do?" in page.text
    assert 'data-rating-kind="csat"' in page.text and 'data-rating-kind="nps"' in page.text
    assert "What is the main reason for your score?" in page.text  # NPS asks why

    # out of range: a friendly form error, 422, nothing stored
    bad = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "nps", "score": "11", "comment": "keep me"},
    )
    assert bad.status_code == 422
    assert "score must be between 0 and 10" in bad.text and "keep me" in bad.text
    missing = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "nps", "comment": "no score"},
    )
    assert missing.status_code == 422 and "Please choose a score" in missing.text
    odd = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "mood", "score": "3"},
    )
    assert odd.status_code == 422 and "Unknown kind of rating" in odd.text
    long = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "nps", "score": "7", "comment": "x" * 4001},
    )
    assert long.status_code == 422 and "at most 4000" in long.text
    await _nothing_stored(sessions)

    # a valid answer with its why, then a changed one: one answer, updated
    done = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "nps", "score": "4", "comment": "Too slow."},
    )
    assert done.status_code == 303 and done.headers["location"].endswith("#rating")
    page = await client.get(f"/portal/requests/{mine.id}")
    assert 'data-rated-score="4"' in page.text and "Too slow." in page.text
    again = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "nps", "score": "9", "comment": "Fixed now."},
    )
    assert again.status_code == 303
    [answer] = await _answers(sessions)
    assert (answer.kind, answer.score, answer.comment, answer.source) == (
        "nps",
        9,
        "Fixed now.",
        "portal",
    )
    assert (answer.ticket_id, answer.customer_id) == (mine.id, me.id)

    # without the session's CSRF token nothing is recorded
    forged = await client.post(
        f"/portal/requests/{mine.id}/rating", data={"kind": "csat", "score": "1"}
    )
    assert forged.status_code == 403
    assert len(await _answers(sessions)) == 1


async def test_another_customers_request_cannot_be_rated(
    client: AsyncClient, sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _surveys(sessions, "csat")
    await make_customer("Me", email="me@example.com")
    stranger = await make_customer("Zed Stranger", email="zed@example.com")
    theirs = await make_ticket("Zed's private matter", requester=stranger)
    await _solve(sessions, theirs.id)
    signed = await sign_in(client, sessions, "me@example.com")
    for ticket_id in (theirs.id, 999999):
        refused = await client.post(
            f"/portal/requests/{ticket_id}/rating",
            data={"csrf_token": signed.csrf, "kind": "csat", "score": "1"},
        )
        assert refused.status_code == 404
        assert "There is no such request." in refused.text and "Zed" not in refused.text
    await _nothing_stored(sessions)


async def test_a_colleagues_request_cannot_be_rated_even_when_the_company_shares(
    client: AsyncClient, sessions: Sessions, make_ticket: Make
) -> None:
    """A sharing company's people see each other's requests; only the requester rates."""
    await _surveys(sessions, "csat")
    async with sessions() as session, session.begin():
        company = await customers.create_company(
            session, name="Acme", domain="acme.example", tier="standard", actor=ADMIN
        )
        await customers.create_customer(
            session, name="Ann", emails=["ann@acme.example"], company_id=company.id, actor=ADMIN
        )
        cid = await customers.create_customer(
            session, name="Cid", emails=["cid@acme.example"], company_id=company.id, actor=ADMIN
        )
        await portal.set_company_shared(session, company.id, shared=True, actor=ADMIN)
    theirs = await make_ticket("Invoice 42 is wrong", requester=cid)
    await _solve(sessions, theirs.id)
    signed = await sign_in(client, sessions, "ann@acme.example")
    page = await client.get(f"/portal/requests/{theirs.id}")
    assert page.status_code == 200 and "How did we do?" not in page.text
    refused = await client.post(
        f"/portal/requests/{theirs.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "csat", "score": "1"},
    )
    assert refused.status_code == 404 and "There is no such request." in refused.text
    headers = await _customer_token(client, sessions, "ann@acme.example")
    api = await client.post(
        f"/api/v1/portal/tickets/{theirs.id}/rating",
        json={"kind": "csat", "score": 1},
        headers=headers,
    )
    assert api.status_code == 404
    await _nothing_stored(sessions)


async def test_a_pending_mail_invitation_is_answered_in_the_portal(
    client: AsyncClient, sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    """The survey scheduled for the solved ticket is the one the form answers: the mail
    then never goes out (it is answered), and the answer counts once."""
    await _surveys(sessions, "csat", rule=True)
    me = await make_customer("Ann", email="ann@example.com")
    mine = await make_ticket("Printer on fire", requester=me)
    await _solve(sessions, mine.id)
    async with sessions() as session:
        [invitation] = (await session.scalars(select(SurveyInvitation))).all()
    assert invitation.status == "scheduled"
    signed = await sign_in(client, sessions, "ann@example.com")
    posted = await client.post(
        f"/portal/requests/{mine.id}/rating",
        data={"csrf_token": signed.csrf, "kind": "csat", "score": "5"},
    )
    assert posted.status_code == 303
    [answer] = await _answers(sessions)
    assert answer.invitation_id == invitation.id and answer.source == "portal"
    async with sessions() as session:
        [after] = (await session.scalars(select(SurveyInvitation))).all()
        answered = (
            await session.scalars(select(Event).where(Event.kind == "survey.answered"))
        ).all()
    assert after.status == "sent"  # answered here, so it is no longer due by mail
    assert [e.data["source"] for e in answered] == ["portal"]


async def test_the_api_rates_my_solved_request(
    client: AsyncClient, sessions: Sessions, make_customer: Make, make_ticket: Make
) -> None:
    await _surveys(sessions, "csat")
    me = await make_customer("Lou", email="lou@example.com")
    stranger = await make_customer("Zed", email="zed@example.com")
    mine = await make_ticket("Old question", requester=me)
    theirs = await make_ticket("Their question", requester=stranger)
    headers = await _customer_token(client, sessions, "lou@example.com")

    assert (
        await client.get(f"/api/v1/portal/tickets/{mine.id}/rating", headers=headers)
    ).json() == []
    early = await client.post(
        f"/api/v1/portal/tickets/{mine.id}/rating",
        json={"kind": "csat", "score": 5},
        headers=headers,
    )
    assert early.status_code == 409

    await _solve(sessions, mine.id)
    await _solve(sessions, theirs.id)
    [question] = (
        await client.get(f"/api/v1/portal/tickets/{mine.id}/rating", headers=headers)
    ).json()
    assert (question["kind"], question["scale_min"], question["scale_max"], question["score"]) == (
        "csat",
        1,
        5,
        None,
    )
    for body, field in (
        ({"kind": "csat", "score": 0}, "score"),
        ({"kind": "csat", "score": 6}, "score"),
        ({"kind": "nps", "score": 6}, "kind"),  # the desk asks no NPS
        ({"kind": "csat", "score": 3, "extra": 1}, "extra"),
        ({"kind": "csat", "score": True}, "score"),  # JSON true is not a 1
        ({"kind": "csat", "score": "4"}, "score"),
        ({"kind": "csat", "score": 4.5}, "score"),
        ({"kind": "csat", "score": 4.0}, "score"),
        ({"kind": "csat", "score": 4, "comment": "x" * 4001}, "comment"),
    ):
        refused = await client.post(
            f"/api/v1/portal/tickets/{mine.id}/rating", json=body, headers=headers
        )
        assert refused.status_code in (404, 422), (body, refused.text)
        assert field in refused.text, body
        if refused.status_code == 422:
            assert field in str(refused.json()["error"]["fields"]), (body, refused.text)
    await _nothing_stored(sessions)

    rated = await client.post(
        f"/api/v1/portal/tickets/{mine.id}/rating",
        json={"kind": "csat", "score": 2, "comment": "Slow."},
        headers=headers,
    )
    assert rated.status_code == 200, rated.text
    assert rated.json() | {"answered_at": None, "updated_at": None} == {
        "ticket_id": mine.id,
        "kind": "csat",
        "score": 2,
        "comment": "Slow.",
        "source": "portal",
        "answered_at": None,
        "updated_at": None,
    }
    for ticket_id in (theirs.id, 999999):
        other = await client.post(
            f"/api/v1/portal/tickets/{ticket_id}/rating",
            json={"kind": "csat", "score": 1},
            headers=headers,
        )
        assert other.status_code == 404 and "Zed" not in other.text
        assert (
            await client.get(f"/api/v1/portal/tickets/{ticket_id}/rating", headers=headers)
        ).status_code == 404
    [answer] = await _answers(sessions)
    assert (answer.ticket_id, answer.score) == (mine.id, 2)
    assert (
        await client.post(
            f"/api/v1/portal/tickets/{mine.id}/rating", json={"kind": "csat", "score": 2}
        )
    ).status_code == 401
