"""Surveys and their rules as data: the API and the admin page, with refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.models import Event
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}


async def test_admin_creates_surveys_and_rules_through_the_api(
    client: AsyncClient, make_token: Make, sessions: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_token("admin")
    made = await client.post(
        "/api/v1/surveys", json={"name": "After service", "kind": "nps"}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    survey = made.json()
    # the kind's standard question and scale; off until enabled
    assert survey["question"].startswith("How likely are you to recommend")
    assert (survey["scale_min"], survey["scale_max"], survey["enabled"]) == (0, 10, False)
    rule = await client.post(
        f"/api/v1/surveys/{survey['id']}/rules",
        json={"delay_hours": 48, "channels": ["email", "portal"], "tiers": ["gold"]},
        headers=admin.headers,
    )
    assert rule.status_code == 201, rule.text
    assert rule.json()["throttle_days"] == 30
    on = await client.patch(
        f"/api/v1/surveys/{survey['id']}", json={"enabled": True}, headers=admin.headers
    )
    assert on.status_code == 200 and on.json()["enabled"] is True
    listed = await client.get("/api/v1/surveys", headers=admin.headers)
    [found] = listed.json()
    assert [r["delay_hours"] for r in found["rules"]] == [48]
    custom = await client.post(
        "/api/v1/surveys",
        json={
            "name": "Docs",
            "kind": "custom",
            "question": "Was the article useful?",
            "scale_min": 1,
            "scale_max": 3,
        },
        headers=admin.headers,
    )
    assert custom.status_code == 201 and custom.json()["scale_max"] == 3
    gone = await client.delete(f"/api/v1/surveys/rules/{rule.json()['id']}", headers=admin.headers)
    assert gone.status_code == 204
    async with sessions() as session:
        kinds = (
            await session.scalars(
                select(Event.kind).where(Event.subject_type == "survey").order_by(Event.id)
            )
        ).all()
    assert list(kinds) == [
        "survey.created",
        "survey.rule_created",
        "survey.updated",
        "survey.created",
        "survey.rule_deleted",
    ]


async def test_refusals_name_the_field(client: AsyncClient, make_token: Make) -> None:
    admin = await make_token("admin")
    h = admin.headers
    bad_kind = await client.post("/api/v1/surveys", json={"name": "x", "kind": "mood"}, headers=h)
    assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["error"]["fields"]
    no_question = await client.post(
        "/api/v1/surveys", json={"name": "x", "kind": "custom"}, headers=h
    )
    assert no_question.status_code == 422 and "question" in no_question.json()["error"]["fields"]
    bad_scale = await client.post(
        "/api/v1/surveys",
        json={"name": "x", "kind": "custom", "question": "?", "scale_min": 5, "scale_max": 2},
        headers=h,
    )
    assert bad_scale.status_code == 422 and "scale_max" in bad_scale.json()["error"]["fields"]
    ok = await client.post("/api/v1/surveys", json={"name": "CSAT", "kind": "csat"}, headers=h)
    assert ok.status_code == 201
    twice = await client.post("/api/v1/surveys", json={"name": "csat", "kind": "nps"}, headers=h)
    assert twice.status_code == 409 and "name" in twice.json()["error"]["fields"]
    sid = ok.json()["id"]
    for body, field in (
        ({"delay_hours": -1}, "delay_hours"),
        ({"throttle_days": 100000}, "throttle_days"),
        ({"channels": ["pigeon"]}, "channels"),
    ):
        refused = await client.post(f"/api/v1/surveys/{sid}/rules", json=body, headers=h)
        assert refused.status_code == 422 and field in refused.json()["error"]["fields"], (
            refused.text
        )
    scores = await client.get("/api/v1/surveys/scores", params={"kind": "mood"}, headers=h)
    assert scores.status_code == 422 and "kind" in scores.json()["error"]["fields"]
    scores = await client.get("/api/v1/surveys/scores", params={"group": "planet"}, headers=h)
    assert scores.status_code == 422 and "group" in scores.json()["error"]["fields"]
    assert (await client.get("/api/v1/surveys/999999", headers=h)).status_code == 404


async def test_only_admins_change_surveys(client: AsyncClient, make_token: Make) -> None:
    agent = await make_token("agent")
    refused = await client.post(
        "/api/v1/surveys", json={"name": "x", "kind": "nps"}, headers=agent.headers
    )
    assert refused.status_code == 403
    # agents and analysts read the scores
    assert (await client.get("/api/v1/surveys/scores", headers=agent.headers)).status_code == 200
    analyst = await make_token("analyst")
    assert (
        await client.get("/api/v1/surveys/responses", headers=analyst.headers)
    ).status_code == 200
    assert (await client.get("/api/v1/surveys/scores")).status_code == 401


async def test_the_admin_page(client: AsyncClient, make_user: Make) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    page = await client.get("/admin/surveys", headers=HTML)
    assert page.status_code == 200 and "No survey yet" in page.text
    made = await client.post(
        "/admin/surveys",
        data={"csrf_token": csrf, "name": "NPS", "kind": "nps", "with_rule": "on"},
        headers=HTML,
    )
    assert made.status_code == 303
    page = await client.get("/admin/surveys", headers=HTML)
    assert "How likely are you to recommend" in page.text and "once in 30 days" in page.text
    assert "disabled" in page.text
    sid = page.text.split('data-survey="')[1].split('"')[0]
    on = await client.post(
        f"/admin/surveys/{sid}", data={"csrf_token": csrf, "enabled": "true"}, headers=HTML
    )
    assert on.status_code == 303
    twice = await client.post(
        "/admin/surveys", data={"csrf_token": csrf, "name": "nps", "kind": "csat"}, headers=HTML
    )
    assert twice.status_code == 409 and "already taken" in twice.text
    bad_rule = await client.post(
        f"/admin/surveys/{sid}/rules",
        data={"csrf_token": csrf, "delay_hours": "soon"},
        headers=HTML,
    )
    assert bad_rule.status_code == 422 and "delay_hours" in bad_rule.text
    scores = await client.get("/surveys", headers=HTML)
    assert scores.status_code == 200 and "NPS by team" in scores.text


async def test_agents_cannot_open_the_admin_page(client: AsyncClient, make_user: Make) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    assert (await client.get("/admin/surveys", headers=HTML)).status_code == 403
    assert (await client.get("/surveys", headers=HTML)).status_code == 200
