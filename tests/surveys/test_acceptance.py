"""Issue 6's acceptance, clause by clause, with a frozen clock and a real SMTP server:

a ticket is solved; after the delay the survey mail is captured by the test SMTP server;
following its link records the rating; the customer's NPS and the team's NPS (with
interval) show it in the API and on the page; a detractor answer opens a recovery
follow-up for the owner.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import outbox
from servicecycle.surveys import service
from tests.factories import sign_in
from tests.surveys.conftest import Clock
from tests.surveys.test_flow import _links, _send, _solve, _survey, _team_and_agent

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}
EARLIER = (10, 10, 9, 9, 8, 8, 7)  # the team's answers before this one: four promoters


async def _team_row(client: AsyncClient, headers: dict[str, str], team_id: int) -> dict[str, Any]:
    rows = (
        await client.get(
            "/api/v1/surveys/scores", params={"kind": "nps", "group": "team"}, headers=headers
        )
    ).json()
    [row] = [r for r in rows if r["key"] == team_id]
    return dict(row)


async def test_solved_mailed_clicked_scored_and_recovered(
    client: AsyncClient,
    sessions: Sessions,
    settings: Any,
    make_user: Make,
    make_customer: Make,
    make_token: Make,
    make_ticket: Make,
    smtp: Any,
    frozen: Clock,
) -> None:
    inbox, smtp_settings = smtp
    await _survey(sessions, "nps", delay_hours=24)
    team, owner = await _team_and_agent(sessions, make_user)
    reader = await make_token("analyst")

    # the team's earlier answers (given in the portal), so its interval has a width
    for i, score in enumerate(EARLIER):
        other = await make_customer(f"Earlier {i}", email=f"earlier{i}@example.com")
        done = await make_ticket("Earlier", requester=other, team_id=team.id, assignee_id=owner.id)
        async with sessions() as session, session.begin():
            await service.rate_in_place(session, done, kind="nps", score=score, source="portal")
    before = await _team_row(client, reader.headers, team.id)
    assert (before["n"], before["score"]) == (7, pytest.approx(400 / 7))  # 4 of 7 promoters

    # a ticket is solved
    dana = await make_customer("Dana Fox", email="dana@example.com")
    ticket = await make_ticket(
        "Charged twice", requester=dana, team_id=team.id, assignee_id=owner.id
    )
    await _solve(sessions, ticket.id)

    # after the delay (not before) the survey mail is captured by the SMTP server
    frozen.advance(hours=23)
    assert await _send(sessions, settings) == (0, 0)
    frozen.advance(hours=1)
    assert await _send(sessions, settings) == (1, 0)
    await outbox.deliver(sessions, smtp_settings)
    [mail] = [m for m in inbox.mails if m["Subject"].startswith("How did we do?")]
    assert mail["To"] == "dana@example.com" and f"[#{ticket.id}]" in mail["Subject"]

    # following its link records the rating
    clicked = await client.get(_links(mail)[3])
    assert clicked.status_code == 200 and 'data-recorded-score="3"' in clicked.text
    answered_at = frozen.at

    # the customer's NPS shows it in the API ...
    mine = (await client.get(f"/api/v1/customers/{dana.id}/surveys", headers=reader.headers)).json()
    assert mine["scores"]["nps"] | {"se": None, "ci_low": None, "ci_high": None} == {
        "n": 1,
        "score": -100.0,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "promoters": 0,
        "passives": 0,
        "detractors": 1,
    }
    profile = await client.get(f"/api/v1/customers/{dana.id}/profile", headers=reader.headers)
    assert profile.status_code == 200 and profile.json()["segment"] == "detractor"

    # ... and the team's NPS with its interval, by hand: scores 10 10 9 9 8 8 7 3, so
    # p_p = 4/8, p_d = 1/8, NPS = 37.5; variance = 0.5 + 0.125 - 0.375^2 = 0.484375;
    # SE = 100 * sqrt(0.484375 / 8) = 24.6063; 95%: 37.5 -/+ 1.96 * 24.6063
    row = await _team_row(client, reader.headers, team.id)
    assert row["label"] == "Billing" and row["n"] == 8
    assert row["score"] == pytest.approx(37.5)
    assert row["se"] == pytest.approx(24.6063, abs=1e-4)
    assert row["ci_low"] == pytest.approx(-10.7283, abs=1e-4)
    assert row["ci_high"] == pytest.approx(85.7283, abs=1e-4)

    # ... and on the pages: the customer's feedback card and the scores by team
    await sign_in(client, owner.email)
    card = await client.get(f"/surveys/customers/{dana.id}", headers=HTML)
    assert "NPS <strong>-100</strong>" in card.text and f"#{ticket.id}" in card.text
    scores = html.unescape((await client.get("/surveys?group=team", headers=HTML)).text)
    team_row = scores.split("<tbody>")[1].split("</tr>")[0]
    assert "Billing" in team_row and "-10.7 to +85.7" in team_row

    # a detractor answer opened a recovery follow-up for the owner, due within 24 hours
    owners = await make_token("agent", user=owner)
    queue = (
        await client.get(
            "/api/v1/follow-ups", params={"owner": "me", "kind": "recovery"}, headers=owners.headers
        )
    ).json()["items"]
    [recovery] = [f for f in queue if f["ticket_id"] == ticket.id]
    assert (recovery["owner_id"], recovery["customer_id"], recovery["state"]) == (
        owner.id,
        dana.id,
        "open",
    )
    assert recovery["source_type"] == "survey_response"
    due = recovery["due_at"].replace("Z", "+00:00")
    assert due == (answered_at + timedelta(hours=24)).isoformat()
    page = await client.get("/follow-ups", headers=HTML)
    assert f'data-follow-up="{recovery["id"]}"' in page.text
