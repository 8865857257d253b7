# ruff: noqa: RUF001 (shifts are typed and shown with an en dash, as the page shows them)
"""Changing and removing calendars and policies, through the API and the admin pages: every
refusal names what is wrong and leaves nothing changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit.errors import ValidationFailed
from servicecycle.sla import service as sla
from tests.factories import Token, sign_in

Make = Callable[..., Awaitable[Any]]
Sessions = async_sessionmaker[AsyncSession]
HTML = {"accept": "text/html"}
ADMIN = Actor.system("test")
WEEK = {str(d): [["09:00", "17:00"]] for d in range(5)}


async def _setup(client: AsyncClient, admin: Token) -> tuple[dict[str, Any], dict[str, Any]]:
    calendar = await client.post(
        "/api/v1/calendars",
        headers=admin.headers,
        json={"name": "Office", "zone": "Europe/London", "week": WEEK},
    )
    assert calendar.status_code == 201, calendar.text
    policy = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={
            "name": "Standard",
            "calendar_id": calendar.json()["id"],
            "targets": {"first_reply": {"minutes": 240, "business": True}},
        },
    )
    assert policy.status_code == 201, policy.text
    return calendar.json(), policy.json()


async def test_calendars_are_changed_and_removed_through_the_api(
    client: AsyncClient, make_token: Make
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    calendar, _policy = await _setup(client, admin)
    url = f"/api/v1/calendars/{calendar['id']}"
    assert (await client.get(url, headers=agent.headers)).json()["name"] == "Office"
    assert (await client.patch(url, headers=agent.headers, json={"version": 1})).status_code == 403

    no_hours = await client.patch(url, headers=admin.headers, json={"version": 1, "week": {}})
    assert no_hours.status_code == 422 and "week" in no_hours.json()["error"]["fields"]
    bad_zone = await client.patch(
        url, headers=admin.headers, json={"version": 1, "zone": "Mars/Base"}
    )
    assert bad_zone.status_code == 422 and "zone" in bad_zone.json()["error"]["fields"]
    stale = await client.patch(url, headers=admin.headers, json={"version": 7, "name": "X"})
    assert stale.status_code == 412

    other = await client.post(
        "/api/v1/calendars",
        headers=admin.headers,
        json={"name": "Night", "zone": "UTC", "week": WEEK},
    )
    taken = await client.patch(url, headers=admin.headers, json={"version": 1, "name": "Night"})
    assert taken.status_code == 409 and taken.json()["error"]["fields"] == {"name": "already taken"}

    saturday = {**WEEK, "5": [["10:00", "14:00"]]}
    changed = await client.patch(
        url,
        headers={**admin.headers, "If-Match": '"1"'},
        json={"week": saturday, "closed_days": ["2026-12-24"]},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["week"]["5"], changed.json()["version"]) == ([["10:00", "14:00"]], 2)

    in_use = await client.delete(url, headers=admin.headers)
    assert in_use.status_code == 409
    assert "Standard" in in_use.json()["error"]["message"]
    assert in_use.json()["error"]["fields"] == {"calendar": "used by Standard"}
    assert (
        await client.delete(f"/api/v1/calendars/{other.json()['id']}", headers=agent.headers)
    ).status_code == 403
    gone = await client.delete(f"/api/v1/calendars/{other.json()['id']}", headers=admin.headers)
    assert gone.status_code == 204
    names = [
        c["name"] for c in (await client.get("/api/v1/calendars", headers=agent.headers)).json()
    ]
    assert names == ["Office"]


async def test_policy_updates_refuse_taken_names_and_bad_values(
    client: AsyncClient, make_token: Make
) -> None:
    admin = await make_token("admin")
    _calendar, _policy = await _setup(client, admin)
    second = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={"name": "Urgent", "targets": {"first_reply": {"minutes": 30, "business": False}}},
    )
    url = f"/api/v1/sla-policies/{second.json()['id']}"
    taken = await client.patch(url, headers=admin.headers, json={"version": 1, "name": "Standard"})
    assert taken.status_code == 409 and taken.json()["error"]["fields"] == {"name": "already taken"}
    empty = await client.patch(url, headers=admin.headers, json={"version": 1, "name": "  "})
    assert empty.status_code == 422 and "name" in empty.json()["error"]["fields"]
    warn = await client.patch(
        url, headers=admin.headers, json={"version": 1, "warn_minutes": 99_999}
    )
    assert warn.status_code == 422 and "warn_minutes" in str(warn.json()["error"]["fields"])
    null = await client.patch(url, headers=admin.headers, json={"version": 1, "targets": None})
    assert null.status_code == 422 and "targets" in null.json()["error"]["fields"]
    team = await client.patch(
        url, headers=admin.headers, json={"version": 1, "conditions": {"team_id": [987654]}}
    )
    assert team.status_code == 422
    assert team.json()["error"]["fields"] == {"conditions.team_id": "no team 987654"}
    bad_path = await client.patch(
        url,
        headers=admin.headers,
        json={"version": 1, "targets": {"resolution": {"minutes": 0, "business": False}}},
    )
    assert bad_path.status_code == 422
    assert "targets.resolution.minutes" in bad_path.json()["error"]["fields"]
    unchanged = (await client.get(url, headers=admin.headers)).json()
    assert (unchanged["name"], unchanged["version"], unchanged["warn_minutes"]) == ("Urgent", 1, 30)


async def test_warning_bounds_are_checked_by_the_service(db: AsyncSession) -> None:
    for bad in (-1, 10_081, True):
        with pytest.raises(ValidationFailed) as refused:
            await sla.create_policy(
                db,
                name=f"P{bad}",
                conditions={},
                targets={"first_reply": {"minutes": 60, "business": False}},
                calendar_id=None,
                pause_statuses=[],
                warn_minutes=bad,
                actor=ADMIN,
            )
        assert "warn_minutes" in refused.value.fields


async def test_a_policy_that_times_open_tickets_is_not_deleted(
    client: AsyncClient, make_token: Make
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    _calendar, policy = await _setup(client, admin)
    url = f"/api/v1/sla-policies/{policy['id']}"
    ticket = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={"subject": "Help", "requester": {"email": "del@example.com"}, "body": "x"},
    )
    assert ticket.status_code == 201, ticket.text
    assert (await client.delete(url, headers=agent.headers)).status_code == 403
    refused = await client.delete(url, headers=admin.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["fields"] == {"policy": "timing 1 open ticket"}

    solved = await client.patch(
        f"/api/v1/tickets/{ticket.json()['id']}",
        headers=agent.headers,
        json={"status": "solved", "version": ticket.json()["version"]},
    )
    assert solved.status_code == 200, solved.text
    assert (
        await client.delete(url, headers={**admin.headers, "If-Match": '"9"'})
    ).status_code == 412
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    clocks = (
        await client.get(f"/api/v1/tickets/{ticket.json()['id']}/sla", headers=agent.headers)
    ).json()
    assert [(c["metric"], c["state"], c["policy_id"]) for c in clocks] == [
        ("first_reply", "cancelled", None)
    ]

    later = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={"name": "Later", "targets": {"resolution": {"minutes": 60, "business": False}}},
    )
    reopened = await client.patch(
        f"/api/v1/tickets/{ticket.json()['id']}",
        headers=agent.headers,
        json={"status": "open", "version": solved.json()["version"]},
    )
    assert reopened.status_code == 200, reopened.text
    clocks = (
        await client.get(f"/api/v1/tickets/{ticket.json()['id']}/sla", headers=agent.headers)
    ).json()
    # reopened after its policy was deleted: the policies are chosen anew
    assert [(c["metric"], c["state"], c["policy_id"]) for c in clocks][1:] == [
        ("resolution", "running", later.json()["id"])
    ]


async def test_admin_edits_and_deletes_calendars_and_policies_on_the_pages(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    async with sessions() as session, session.begin():
        office = await sla.create_calendar(
            session,
            name="Office",
            zone="Europe/London",
            week=WEEK,
            holiday_country="GB",
            holiday_region="ENG",
            closed_days=["2026-12-24"],
            actor=ADMIN,
        )
        spare = await sla.create_calendar(
            session,
            name="Spare",
            zone="UTC",
            week=WEEK,
            holiday_country=None,
            holiday_region=None,
            closed_days=[],
            actor=ADMIN,
        )
        policy = await sla.create_policy(
            session,
            name="Standard",
            conditions={},
            targets={"first_reply": {"minutes": 60, "business": True}},
            calendar_id=office.id,
            pause_statuses=["pending"],
            warn_minutes=30,
            actor=ADMIN,
        )
    page = await client.get(f"/admin/calendars/{office.id}", headers=HTML)
    assert page.status_code == 200
    assert "Edit “Office”" in page.text and 'value="09:00–17:00"' in page.text
    assert ">2026-12-24</textarea>" in page.text and 'name="version" value="1"' in page.text

    form = {
        "csrf_token": csrf,
        "version": "1",
        "name": "Office",
        "zone": "Europe/London",
        **{f"day{day}": "" for day in range(7)},
        "holiday_country": "GB",
        "holiday_region": "ENG",
        "closed_days": "",
    }
    empty = await client.post(f"/admin/calendars/{office.id}", data=form, headers=HTML)
    assert empty.status_code == 422 and "a calendar needs some working hours" in empty.text
    saved = await client.post(
        f"/admin/calendars/{office.id}", data={**form, "day0": "08:00–16:00"}, headers=HTML
    )
    assert saved.status_code == 303
    async with sessions() as session:
        stored = await sla.get_calendar(session, office.id)
        assert (stored.week, stored.closed_days, stored.version) == (
            {"0": [["08:00", "16:00"]]},
            [],
            2,
        )
        kinds = [e.kind for e in (await events.query(session, subject_type="calendar")).items]
        assert "calendar.updated" in kinds

    used = await client.post(
        f"/admin/calendars/{office.id}/delete",
        data={"csrf_token": csrf, "version": "2"},
        headers=HTML,
    )
    assert used.status_code == 409 and "used by Standard" in used.text
    spare_gone = await client.post(
        f"/admin/calendars/{spare.id}/delete",
        data={"csrf_token": csrf, "version": "1"},
        headers=HTML,
    )
    assert spare_gone.status_code == 303

    policy_page = await client.get(f"/admin/sla/policies/{policy.id}", headers=HTML)
    assert "Delete policy" in policy_page.text
    deleted = await client.post(
        f"/admin/sla/policies/{policy.id}/delete",
        data={"csrf_token": csrf, "version": "1"},
        headers=HTML,
    )
    assert deleted.status_code == 303
    async with sessions() as session:
        assert [c.name for c in await sla.list_calendars(session)] == ["Office"]
        assert await sla.list_policies(session) == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "P", "targets": {"first_reply": 5}}, "targets.first_reply"),
        ({"name": "P", "targets": {}, "conditions": {"tier": "vip"}}, "conditions.tier"),
        (
            {"name": "P", "targets": {"first_reply": {"minutes": 5}}, "warn_minutes": -1},
            "warn_minutes",
        ),
        ({"name": "P", "targets": {"first_reply": {"minutes": 5}}, "colour": "red"}, "colour"),
        ({"name": "P", "targets": {"sometime": {"minutes": 5}}}, "targets.sometime"),
        ({"name": "P", "pause_statuses": ["open"], "targets": {}}, "pause_statuses.0"),
    ],
)
async def test_bad_policy_json_is_refused_naming_the_path(
    client: AsyncClient, make_token: Make, body: dict[str, Any], path: str
) -> None:
    admin = await make_token("admin")
    refused = await client.post("/api/v1/sla-policies", headers=admin.headers, json=body)
    assert refused.status_code == 422, refused.text
    assert path in refused.json()["error"]["fields"], refused.json()
    assert (await client.get("/api/v1/sla-policies", headers=admin.headers)).json() == []
