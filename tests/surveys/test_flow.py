"""The acceptance flow, end to end with a frozen clock and a real SMTP server: a ticket is
solved, the survey mail goes out after the delay, its link records the answer, and the
scores show it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.auth import service as auth
from servicecycle.channels.email import outbox
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.surveys import service, tasks
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import service as tickets
from tests.factories import sign_in
from tests.surveys.conftest import Clock

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., Awaitable[Any]]
ADMIN = Actor.system("test")


async def _survey(
    sessions: Sessions, kind: str = "nps", *, delay_hours: int = 24, throttle_days: int = 30
) -> Any:
    async with sessions() as session, session.begin():
        survey = await service.create_survey(
            session, name=f"{kind} after service", kind=kind, enabled=True, actor=ADMIN
        )
        await service.create_rule(
            session, survey, delay_hours=delay_hours, throttle_days=throttle_days, actor=ADMIN
        )
        return survey


async def _team_and_agent(sessions: Sessions, make_user: Make) -> tuple[Any, Any]:
    agent = await make_user("agent", name="Ada Agent")
    async with sessions() as session, session.begin():
        team = await auth.create_team(session, name="Billing", description="", actor=ADMIN)
    return team, agent


async def _solve(sessions: Sessions, ticket_id: int) -> None:
    async with sessions() as session, session.begin():
        ticket = await tickets.get_ticket(session, ticket_id)
        await tickets.set_status(session, ticket, "solved", actor=ADMIN)


async def _send(sessions: Sessions, settings: Any) -> tuple[int, int]:
    async with sessions() as session, session.begin():
        return await service.send_due(session, tasks.mailer(settings))


def _links(mail: Any) -> dict[int, str]:
    """score -> the path and query of its link in the mail."""
    found = re.findall(r"^[ \t]*(\d+)[ \t]+(\S+)\r?$", mail.get_content(), re.MULTILINE)
    return {int(score): _path(url) for score, url in found}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def _events(sessions: Sessions, kind: str) -> list[Event]:
    async with sessions() as session:
        return list(
            (
                await session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))
            ).all()
        )


async def _responses(sessions: Sessions) -> list[SurveyResponse]:
    async with sessions() as session:
        return list((await session.scalars(select(SurveyResponse))).all())


async def test_solved_ticket_survey_mail_link_answer_and_scores(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_user: Make,
    make_customer: Make,
    make_ticket: Make,
    make_token: Make,
    smtp: Any,
    frozen: Clock,
) -> None:
    inbox, smtp_settings = smtp
    survey = await _survey(sessions, "nps", delay_hours=24)
    team, agent = await _team_and_agent(sessions, make_user)
    customer = await make_customer("Dana Fox", email="dana@example.com")
    ticket = await make_ticket(
        "Invoice wrong", requester=customer, team_id=team.id, assignee_id=agent.id, type="billing"
    )
    await _solve(sessions, ticket.id)

    # nothing before the delay
    frozen.advance(hours=23, minutes=59)
    assert await _send(sessions, settings) == (0, 0)
    await outbox.deliver(sessions, smtp_settings)
    assert not [m for m in inbox.mails if m["Subject"].startswith("How did we do?")]

    # after the delay the mail is captured by the SMTP server
    frozen.advance(minutes=1)
    assert await _send(sessions, settings) == (1, 0)
    await outbox.deliver(sessions, smtp_settings)
    [mail] = [m for m in inbox.mails if m["Subject"].startswith("How did we do?")]
    assert mail["To"] == "dana@example.com"
    assert f"[#{ticket.id}]" in mail["Subject"]
    assert "recommend us" in mail.get_content()
    links = _links(mail)
    assert sorted(links) == list(range(0, 11))  # one link per NPS score

    # one click records the rating, linked to ticket, agent, team and customer
    page = await client.get(links[3])
    assert page.status_code == 200, page.text
    assert "Thank you" in page.text and 'data-recorded-score="3"' in page.text
    [response] = await _responses(sessions)
    assert (response.kind, response.score, response.source) == ("nps", 3, "email")
    assert (response.ticket_id, response.customer_id) == (ticket.id, customer.id)
    assert (response.agent_id, response.team_id, response.category) == (
        agent.id,
        team.id,
        "billing",
    )
    [answered] = await _events(sessions, "survey.answered")
    assert answered.subject_type == "ticket" and answered.subject_id == str(ticket.id)
    assert answered.data == answered.data | {
        "response_id": response.id,
        "kind": "nps",
        "score": 3,
        "customer_id": customer.id,
        "agent_id": agent.id,
        "team_id": team.id,
        "detractor": True,
        "updated": False,
    }

    # the detractor answer opened a recovery follow-up for the ticket's owner (follow-ups
    # hears survey.answered)
    async with sessions() as session:
        recovery = (
            await session.execute(
                text(
                    "SELECT kind, owner_id FROM follow_ups "
                    "WHERE source_type = 'survey_response' AND source_id = :id"
                ),
                {"id": str(response.id)},
            )
        ).one()
    assert tuple(recovery) == ("recovery", agent.id)

    # the team's NPS with its interval, and the customer's NPS, in the API
    reader = await make_token("analyst")
    scores = await client.get(
        "/api/v1/surveys/scores", params={"kind": "nps", "group": "team"}, headers=reader.headers
    )
    assert scores.status_code == 200, scores.text
    [row] = scores.json()
    # one detractor: NPS = -100; variance = 0 + 1 - 1 = 0, so SE = 0 and the interval is a point
    assert row["key"] == team.id and row["label"] == "Billing"
    assert (row["n"], row["score"], row["se"], row["ci_low"], row["ci_high"]) == (
        1,
        -100.0,
        0.0,
        -100.0,
        -100.0,
    )
    assert (row["sent"], row["response_rate"]) == (1, 100.0)
    mine = await client.get(f"/api/v1/customers/{customer.id}/surveys", headers=reader.headers)
    assert mine.status_code == 200
    assert mine.json()["scores"]["nps"]["score"] == -100.0
    assert [r["score"] for r in mine.json()["responses"]] == [3]

    # a second click updates the same answer, never adds one
    again = await client.get(links[10])
    assert again.status_code == 200 and 'data-recorded-score="10"' in again.text
    [response] = await _responses(sessions)
    assert response.score == 10
    second = (await _events(sessions, "survey.answered"))[-1]
    assert second.data["updated"] is True and second.data["detractor"] is False
    # the same score clicked again changes nothing and is no news
    assert (await client.get(links[10])).status_code == 200
    assert len(await _events(sessions, "survey.answered")) == 2
    assert len(await _responses(sessions)) == 1

    # and a second survey answer moves the interval: one promoter and one detractor
    other = await make_customer("Eli", email="eli@example.com")
    ticket2 = await make_ticket("Refund", requester=other, team_id=team.id, assignee_id=agent.id)
    await _solve(sessions, ticket2.id)
    frozen.advance(hours=24)
    assert await _send(sessions, settings) == (1, 0)
    await outbox.deliver(sessions, smtp_settings)
    mail2 = [m for m in inbox.mails if m["To"] == "eli@example.com" and "How did" in m["Subject"]]
    assert (await client.get(_links(mail2[0])[0])).status_code == 200
    [row] = (
        await client.get(
            "/api/v1/surveys/scores",
            params={"kind": "nps", "group": "team"},
            headers=reader.headers,
        )
    ).json()
    # p_p = p_d = 0.5: NPS 0; variance = 0.5 + 0.5 - 0 = 1; SE = 100 * sqrt(1 / 2) = 70.71
    assert row["n"] == 2 and row["score"] == 0.0
    assert row["se"] == pytest.approx(70.7107, abs=1e-4)
    assert row["ci_low"] == -100.0 and row["ci_high"] == 100.0  # 0 -/+ 138.6, clipped

    # by period and by category: answered on 3 and 4 November 2026 (ISO week 45)
    for group, keys in (
        ("month", ["2026-11"]),
        ("week", ["2026-W45"]),
        ("category", ["billing", None]),
    ):
        rows = (
            await client.get(
                "/api/v1/surveys/scores",
                params={"kind": "nps", "group": group},
                headers=reader.headers,
            )
        ).json()
        assert [r["key"] for r in rows] == keys, group
    overall = (
        await client.get("/api/v1/surveys/scores", params={"kind": "nps"}, headers=reader.headers)
    ).json()
    assert [(r["key"], r["n"], r["sent"], r["response_rate"]) for r in overall] == [
        ("all", 2, 2, 100.0)
    ]

    # the page shows the team's NPS with its interval
    await sign_in(client, agent.email)
    html = await client.get("/surveys", headers={"accept": "text/html"})
    assert html.status_code == 200
    assert "Billing" in html.text and "-100.0 to +100.0" in html.text
    assert survey.id  # the survey used


async def test_the_comment_form_adds_the_why(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    await _survey(sessions, "csat", delay_hours=0)
    customer = await make_customer(email="why@example.com")
    ticket = await make_ticket(requester=customer)
    await _solve(sessions, ticket.id)
    assert await _send(sessions, settings) == (1, 0)
    token = await _token_of(sessions, settings, ticket.id)
    page = await client.get(f"/surveys/r/{token}?score=2")
    form_token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    # without the cookie's twin the form is refused and nothing changes
    client.cookies.set("sc_survey_form", "other", path="/surveys/r/")
    forged = await client.post(f"/surveys/r/{token}", data={"csrf_token": "forged", "comment": "x"})
    assert forged.status_code == 400
    client.cookies.set("sc_survey_form", form_token, path="/surveys/r/")
    sent = await client.post(
        f"/surveys/r/{token}", data={"csrf_token": form_token, "comment": "Took three replies."}
    )
    assert sent.status_code == 200 and "Thank you for your feedback" in sent.text
    [response] = await _responses(sessions)
    assert (response.score, response.comment, response.source) == (
        2,
        "Took three replies.",
        "portal",
    )
    events = await _events(sessions, "survey.answered")
    assert [e.data["updated"] for e in events] == [False, True]
    assert events[-1].data["detractor"] is True  # CSAT 2


async def _token_of(sessions: Sessions, settings: Any, ticket_id: int) -> str:
    async with sessions() as session:
        invitation = await session.scalar(
            select(SurveyInvitation).where(SurveyInvitation.ticket_id == ticket_id)
        )
        assert invitation is not None and invitation.sent_at is not None
        return service.make_token(settings.keyring(), invitation, sent=invitation.sent_at)


async def test_bad_links_are_refused_kindly_and_store_nothing(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    await _survey(sessions, "nps", delay_hours=1)
    customer = await make_customer()
    ticket = await make_ticket(requester=customer)
    await _solve(sessions, ticket.id)
    frozen.advance(hours=1)
    assert await _send(sessions, settings) == (1, 0)
    token = await _token_of(sessions, settings, ticket.id)
    keyring = settings.keyring()
    async with sessions() as session:
        invitation = await session.scalar(
            select(SurveyInvitation).where(SurveyInvitation.ticket_id == ticket.id)
        )
    assert invitation is not None

    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    page = await client.get(f"/surveys/r/{tampered}?score=9")
    assert page.status_code == 400 and "cannot be used" in page.text
    other_purpose = keyring.sign(
        "portal-link", {"invitation": invitation.id, "customer": customer.id}, expires_at=None
    )
    assert (await client.get(f"/surveys/r/{other_purpose}?score=9")).status_code == 400
    someone_else = keyring.sign(
        "survey", {"invitation": invitation.id, "customer": customer.id + 1}, expires_at=None
    )
    page = await client.get(f"/surveys/r/{someone_else}?score=9")
    assert page.status_code == 403 and "someone else" in page.text
    for bad in ("11", "-1", "nine"):
        page = await client.get(f"/surveys/r/{token}?score={bad}")
        assert page.status_code == 422 and "not on the scale" in page.text
    frozen.advance(days=31)
    page = await client.get(f"/surveys/r/{token}?score=9")
    assert page.status_code == 410 and "closed" in page.text
    assert await _responses(sessions) == []
    assert await _events(sessions, "survey.answered") == []


async def test_a_link_whose_ticket_moved_to_another_customer_is_refused(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    await _survey(sessions, "csat", delay_hours=0)
    customer = await make_customer()
    other = await make_customer()
    ticket = await make_ticket(requester=customer)
    await _solve(sessions, ticket.id)
    assert await _send(sessions, settings) == (1, 0)
    token = await _token_of(sessions, settings, ticket.id)
    async with sessions() as session, session.begin():
        await tickets.move_requester(session, from_id=customer.id, to_id=other.id, actor=ADMIN)
    page = await client.get(f"/surveys/r/{token}?score=5")
    assert page.status_code == 403
    assert await _responses(sessions) == []


async def test_throttle_and_reopen_skip_with_the_reason_in_the_event_log(
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    await _survey(sessions, "nps", delay_hours=2, throttle_days=30)
    customer = await make_customer()
    first = await make_ticket("One", requester=customer)
    second = await make_ticket("Two", requester=customer)
    reopened = await make_ticket("Three")
    for t in (first, second, reopened):
        await _solve(sessions, t.id)
    async with sessions() as session, session.begin():
        ticket = await tickets.get_ticket(session, reopened.id)
        await tickets.set_status(session, ticket, "open", actor=ADMIN)
    frozen.advance(hours=2)
    assert await _send(sessions, settings) == (1, 2)
    skipped = {int(e.subject_id): e.data for e in await _events(sessions, "survey.skipped")}
    assert skipped[second.id]["reason"] == "throttled"
    assert "within 30 days" in skipped[second.id]["detail"]
    assert skipped[reopened.id]["reason"] == "reopened"
    # still within the window a month later? 31 days on, a new solve is surveyed again
    frozen.advance(days=31)
    third = await make_ticket("Four", requester=customer)
    await _solve(sessions, third.id)
    frozen.advance(hours=2)
    assert await _send(sessions, settings) == (1, 0)
    # the reopened ticket solved again is surveyed after all
    await _solve(sessions, reopened.id)
    frozen.advance(hours=2)
    assert await _send(sessions, settings) == (1, 0)


async def test_no_survey_until_one_is_enabled_and_rules_filter(
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    ticket = await make_ticket()
    await _solve(sessions, ticket.id)
    async with sessions() as session, session.begin():
        survey = await service.create_survey(session, name="CES", kind="ces", actor=ADMIN)
        await service.create_rule(session, survey, delay_hours=0, channels=["chat"], actor=ADMIN)
        await service.create_rule(session, survey, delay_hours=0, tiers=["gold"], actor=ADMIN)
    frozen.advance(hours=1)
    assert await _send(sessions, settings) == (0, 0)  # disabled: nothing scheduled
    async with sessions() as session, session.begin():
        survey = await service.get_survey(session, survey.id)
        await service.update_survey(session, survey, changes={"enabled": True}, actor=ADMIN)
    plain = await make_ticket(channel="email")
    gold = await make_ticket(requester=await make_customer(tier="gold"))
    await _solve(sessions, plain.id)
    await _solve(sessions, gold.id)
    assert await _send(sessions, settings) == (1, 0)
    async with sessions() as session:
        ids = (await session.scalars(select(SurveyInvitation.ticket_id))).all()
        count = await session.scalar(select(func.count()).select_from(SurveyInvitation))
    assert list(ids) == [gold.id] and count == 1


async def test_no_email_address_is_skipped(
    sessions: Sessions, settings: Any, make_ticket: Make, frozen: Clock
) -> None:
    await _survey(sessions, "csat", delay_hours=0)
    ticket = await make_ticket()
    from servicecycle.customers.models import CustomerIdentity

    async with sessions() as session, session.begin():
        for identity in (
            await session.scalars(
                select(CustomerIdentity).where(CustomerIdentity.customer_id == ticket.requester_id)
            )
        ).all():
            await session.delete(identity)
    await _solve(sessions, ticket.id)
    assert await _send(sessions, settings) == (0, 1)
    [event] = await _events(sessions, "survey.skipped")
    assert event.data["reason"] == "no e-mail address"


async def test_a_link_opened_by_another_signed_in_customer_is_refused(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    frozen: Clock,
) -> None:
    from datetime import timedelta

    from servicecycle.portal import service as portal

    await _survey(sessions, "nps", delay_hours=0)
    customer = await make_customer()
    ticket = await make_ticket(requester=customer)
    await _solve(sessions, ticket.id)
    assert await _send(sessions, settings) == (1, 0)
    token = await _token_of(sessions, settings, ticket.id)
    intruder = await make_customer()
    async with sessions() as session, session.begin():
        cookie = await portal.start_session(
            session, intruder, kind="web", lifetime=timedelta(days=1)
        )
    client.cookies.set("sc_portal", cookie)
    page = await client.get(f"/surveys/r/{token}?score=10")
    assert page.status_code == 403
    assert await _responses(sessions) == []
    # the customer themselves, signed in or not, may answer; the staff see it
    async with sessions() as session, session.begin():
        own = await portal.start_session(session, customer, kind="web", lifetime=timedelta(days=1))
    client.cookies.set("sc_portal", own)
    assert (await client.get(f"/surveys/r/{token}?score=10")).status_code == 200
    # without a score the link shows the form to choose one
    form = await client.get(f"/surveys/r/{token}")
    assert form.status_code == 200 and 'value="10" checked' in form.text


async def test_responses_list_and_the_customer_fragment(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_ticket: Make,
    make_customer: Make,
    make_user: Make,
    make_token: Make,
    frozen: Clock,
) -> None:
    await _survey(sessions, "csat", delay_hours=0)
    customer = await make_customer()
    ticket = await make_ticket(requester=customer)
    await _solve(sessions, ticket.id)
    assert await _send(sessions, settings) == (1, 0)
    token = await _token_of(sessions, settings, ticket.id)
    assert (await client.get(f"/surveys/r/{token}?score=1")).status_code == 200
    reader = await make_token("agent")
    found = await client.get(
        "/api/v1/surveys/responses",
        params={"customer_id": customer.id, "detractors": "true"},
        headers=reader.headers,
    )
    assert [(r["kind"], r["score"], r["ticket_id"]) for r in found.json()] == [
        ("csat", 1, ticket.id)
    ]
    none = await client.get(
        "/api/v1/surveys/responses", params={"kind": "nps"}, headers=reader.headers
    )
    assert none.json() == []
    user = await make_user("agent")
    await sign_in(client, user.email)
    fragment = await client.get(
        f"/surveys/customers/{customer.id}", headers={"accept": "text/html"}
    )
    assert fragment.status_code == 200
    assert "CSAT <strong>0%</strong>" in fragment.text and f"#{ticket.id}" in fragment.text


async def test_a_rating_at_the_end_of_a_chat(
    sessions: Sessions, settings: Any, make_ticket: Make, frozen: Clock
) -> None:
    ticket = await make_ticket(channel="chat")
    async with sessions() as session, session.begin():
        with pytest.raises(Exception, match="No enabled csat survey"):
            await service.rate_in_place(session, ticket, kind="csat", score=5)
    await _survey(sessions, "csat", delay_hours=1)
    async with sessions() as session, session.begin():
        with pytest.raises(Exception, match="score must be between 1 and 5"):
            await service.rate_in_place(session, ticket, kind="csat", score=6)
    async with sessions() as session, session.begin():
        response = await service.rate_in_place(session, ticket, kind="csat", score=4)
    assert (response.source, response.score, response.ticket_id) == ("chat", 4, ticket.id)
    # the chat's rating counts as the survey: solving the ticket sends no mail for it
    await _solve(sessions, ticket.id)
    frozen.advance(hours=2)
    assert await _send(sessions, settings) == (0, 0)
    [event] = await _events(sessions, "survey.answered")
    assert event.data["source"] == "chat" and event.data["detractor"] is False
