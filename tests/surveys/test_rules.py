"""Editing a survey's sending rule: the API (PATCH with If-Match or a version) and the
admin page; refusals name the field and change nothing; the change is in the event log and
is what the next solved ticket is scheduled by."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.surveys import service
from servicecycle.surveys.models import SurveyInvitation, SurveyRule
from servicecycle.tickets import service as tickets
from tests.factories import sign_in
from tests.surveys.conftest import Clock

Make = Callable[..., Awaitable[Any]]
Sessions = async_sessionmaker[AsyncSession]
HTML = {"accept": "text/html"}
ADMIN = Actor.system("test")


async def _rule(sessions: Sessions) -> SurveyRule:
    async with sessions() as session, session.begin():
        survey = await service.create_survey(
            session, name="NPS", kind="nps", enabled=True, actor=ADMIN
        )
        return await service.create_rule(session, survey, delay_hours=24, actor=ADMIN)


async def _stored(sessions: Sessions, rule_id: int) -> SurveyRule:
    async with sessions() as session:
        found = await session.get(SurveyRule, rule_id)
        assert found is not None
        return found


async def _updates(sessions: Sessions) -> list[Event]:
    async with sessions() as session:
        return list(
            (
                await session.scalars(
                    select(Event).where(Event.kind == "survey.rule_updated").order_by(Event.id)
                )
            ).all()
        )


async def test_an_admin_patches_a_rule_with_its_version(
    client: AsyncClient,
    sessions: Sessions,
    make_token: Make,
    make_customer: Make,
    make_ticket: Make,
    frozen: Clock,
) -> None:
    rule = await _rule(sessions)
    admin = await make_token("admin")
    url = f"/api/v1/surveys/rules/{rule.id}"
    read = await client.get(url, headers=admin.headers)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    assert read.json()["version"] == 1

    # no version: 428; a stale one: 412 with the current one; nothing changes
    assert (
        await client.patch(url, json={"delay_hours": 2}, headers=admin.headers)
    ).status_code == 428
    changed = await client.patch(
        url,
        json={"delay_hours": 2, "channels": ["chat", "portal"], "segments": ["vip"]},
        headers={**admin.headers, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    body = changed.json()
    assert (body["delay_hours"], body["channels"], body["segments"], body["version"]) == (
        2,
        ["chat", "portal"],
        ["vip"],
        2,
    )
    stale = await client.patch(
        url, json={"throttle_days": 1}, headers={**admin.headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert (await _stored(sessions, rule.id)).throttle_days == 30

    # a version in the body works as well; an empty list clears a filter
    cleared = await client.patch(
        url,
        json={"segments": [], "throttle_days": 7, "version": 2},
        headers=admin.headers,
    )
    assert cleared.status_code == 200
    assert (cleared.json()["segments"], cleared.json()["throttle_days"]) == ([], 7)

    # the event log says what changed, and from what
    first, second = await _updates(sessions)
    assert first.subject_type == "survey" and first.subject_id == str(rule.survey_id)
    assert first.actor_type == "user" and first.actor_id == str(admin.user.id)
    assert first.data == {
        "rule_id": rule.id,
        "changed": {"delay_hours": 2, "channels": ["chat", "portal"], "segments": ["vip"]},
        "before": {"delay_hours": 24, "channels": [], "segments": []},
    }
    assert second.data["changed"] == {"segments": [], "throttle_days": 7}

    # the next solved chat is scheduled by the new rule: 2 hours, not 24
    customer = await make_customer("Dana", email="dana@example.com")
    ticket = await make_ticket("Hello", requester=customer, channel="chat")
    async with sessions() as session, session.begin():
        loaded = await tickets.get_ticket(session, ticket.id)
        await tickets.set_status(session, loaded, "solved", actor=ADMIN)
    async with sessions() as session:
        [invitation] = (await session.scalars(select(SurveyInvitation))).all()
    assert invitation.due_at - invitation.solved_at == timedelta(hours=2)
    assert invitation.throttle_days == 7

    # the same values again change nothing and are no news
    same = await client.patch(url, json={"delay_hours": 2, "version": 3}, headers=admin.headers)
    assert same.status_code == 200 and same.json()["version"] == 3
    assert len(await _updates(sessions)) == 2


async def test_bad_rule_changes_name_the_field_and_change_nothing(
    client: AsyncClient, sessions: Sessions, make_token: Make
) -> None:
    rule = await _rule(sessions)
    admin = await make_token("admin")
    url = f"/api/v1/surveys/rules/{rule.id}"
    for body, field in (
        ({"delay_hours": -1}, "delay_hours"),
        ({"delay_hours": 24 * 91}, "delay_hours"),
        ({"delay_hours": "soon"}, "delay_hours"),
        ({"throttle_days": 100000}, "throttle_days"),
        ({"channels": ["pigeon"]}, "channels"),
        ({"tiers": ["x" * 41]}, "tiers"),
        ({"survey_id": 5}, "survey_id"),
        # a good value beside a bad one is not kept either
        ({"delay_hours": 1, "channels": ["pigeon"]}, "channels"),
    ):
        refused = await client.patch(url, json={**body, "version": 1}, headers=admin.headers)
        assert refused.status_code == 422, (body, refused.text)
        assert field in str(refused.json()["error"]["fields"]), (body, refused.text)
    stored = await _stored(sessions, rule.id)
    assert (stored.delay_hours, stored.channels, stored.version) == (24, [], 1)
    assert await _updates(sessions) == []
    agent = await make_token("agent")
    assert (
        await client.patch(url, json={"delay_hours": 1, "version": 1}, headers=agent.headers)
    ).status_code == 403
    assert (
        await client.patch(
            "/api/v1/surveys/rules/999999", json={"version": 1}, headers=admin.headers
        )
    ).status_code == 404


async def test_the_admin_page_edits_a_rule(
    client: AsyncClient, sessions: Sessions, make_user: Make
) -> None:
    rule = await _rule(sessions)
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    page = await client.get("/admin/surveys", headers=HTML)
    assert f'data-rule-edit="{rule.id}"' in page.text and "Edit this rule" in page.text

    bad = await client.post(
        f"/admin/surveys/rules/{rule.id}",
        data={
            "csrf_token": csrf,
            "version": "1",
            "delay_hours": "48",
            "throttle_days": "-3",
            "enabled_shown": "1",
            "enabled": "on",
        },
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "throttle_days must be between 0 and 3650" in bad.text
    assert 'aria-invalid="true"' in bad.text
    assert (await _stored(sessions, rule.id)).delay_hours == 24

    saved = await client.post(
        f"/admin/surveys/rules/{rule.id}",
        data={
            "csrf_token": csrf,
            "version": "1",
            "delay_hours": "48",
            "channels": ["email", "portal"],
            "tiers": "gold, silver",
            "segments": "",
            "throttle_days": "60",
            "enabled_shown": "1",
        },
        headers=HTML,
    )
    assert saved.status_code == 303
    stored = await _stored(sessions, rule.id)
    assert (
        stored.delay_hours,
        stored.channels,
        stored.tiers,
        stored.throttle_days,
        stored.enabled,
    ) == (48, ["email", "portal"], ["gold", "silver"], 60, False)
    page = await client.get("/admin/surveys", headers=HTML)
    assert "48 h" in page.text and "once in 60 days" in page.text and "paused" in page.text

    # the form read version 1; the rule is at 2 now: a second save from it is refused
    stale = await client.post(
        f"/admin/surveys/rules/{rule.id}",
        data={"csrf_token": csrf, "version": "1", "delay_hours": "1", "throttle_days": "1"},
        headers=HTML,
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.text
    # a form without its version (or a garbled one) is never taken as current
    for version in ({}, {"version": "x"}):
        blind = await client.post(
            f"/admin/surveys/rules/{rule.id}",
            data={"csrf_token": csrf, "delay_hours": "2", "throttle_days": "2", **version},
            headers=HTML,
        )
        assert blind.status_code == 412, version
    assert (await _stored(sessions, rule.id)).delay_hours == 48
    [event] = await _updates(sessions)
    assert event.data["changed"]["enabled"] is False
