# ruff: noqa: RUF001 (shifts are typed and shown with an en dash, as the page shows them)
"""The calendar and SLA policy admin pages, through the real app: what an admin types, what is
saved, and every refusal shown beside the form with nothing saved."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.sla.models import Calendar, SlaPolicy
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
Sessions = async_sessionmaker[AsyncSession]
HTML = {"accept": "text/html"}
HTMX = {"accept": "text/html", "hx-request": "true"}
ADMIN = Actor.system("test")
WEEK = {str(day): [["09:00", "17:00"]] for day in range(5)}
CLOSED = {f"day{day}": "" for day in range(7)}


@pytest.fixture
def frozen() -> Iterator[Callable[[str], None]]:
    """Freeze "now" at an ISO instant (UTC unless it says otherwise)."""
    moment = [datetime(2026, 11, 23, 13, 0, tzinfo=UTC)]
    clock.set_source(lambda: moment[0])

    def set_to(text: str) -> None:
        found = datetime.fromisoformat(text)
        moment[0] = found if found.tzinfo else found.replace(tzinfo=UTC)

    yield set_to
    clock.set_source(None)


async def _admin(client: AsyncClient, make_user: Make) -> str:
    admin = await make_user("admin")
    return await sign_in(client, admin.email)


async def _calendars(sessions: Sessions) -> list[Calendar]:
    async with sessions() as session:
        return await sla.list_calendars(session)


async def _policies(sessions: Sessions) -> list[SlaPolicy]:
    async with sessions() as session:
        return await sla.list_policies(session)


async def _calendar(sessions: Sessions, name: str = "Office", **extra: Any) -> Calendar:
    settings: dict[str, Any] = {
        "zone": "UTC",
        "week": WEEK,
        "holiday_country": None,
        "holiday_region": None,
        "closed_days": [],
    }
    async with sessions() as session, session.begin():
        return await sla.create_calendar(session, name=name, actor=ADMIN, **{**settings, **extra})


async def _policy(sessions: Sessions, name: str, calendar_id: int, **extra: Any) -> SlaPolicy:
    settings: dict[str, Any] = {
        "conditions": {},
        "targets": {"first_reply": {"minutes": 60, "business": True}},
        "calendar_id": calendar_id,
        "pause_statuses": ["pending"],
        "warn_minutes": 30,
    }
    async with sessions() as session, session.begin():
        return await sla.create_policy(session, name=name, actor=ADMIN, **{**settings, **extra})


def _calendar_form(csrf: str, **extra: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "London office",
        "zone": "Europe/London",
        **{f"day{day}": "09:00–17:00" for day in range(5)},
        "day5": "",
        "day6": "",
        "holiday_country": "",
        "holiday_region": "",
        "closed_days": "",
    }
    return {**form, **extra}


def _policy_form(csrf: str, calendar: int | str = "", **extra: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": csrf,
        "name": "VIP e-mail",
        "tier": "vip",
        "channel": ["email", "web"],
        "first_reply_amount": "1",
        "first_reply_unit": "h",
        "first_reply_clock": "business",
        "resolution_amount": "2",
        "resolution_unit": "d",
        "resolution_clock": "business",
        "calendar_id": str(calendar),
        "pause": ["pending", "on-hold"],
        "warn_minutes": "30",
    }
    return {**form, **extra}


def _order(page: str) -> list[str]:
    return re.findall(r'class="policy-name" href="[^"]+">([^<]+)</a>', page)


# -- calendars ------------------------------------------------------------------------------


async def test_admin_saves_a_calendar_with_an_overnight_shift_holidays_and_closed_days(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    page = await client.get("/admin/calendars", headers=HTML)
    assert page.status_code == 200
    assert "<option selected>Europe/London</option>" not in page.text  # UTC by default
    assert (
        "<option>Europe/London</option>" in page.text
        and "<option>Pacific/Auckland</option>" in page.text
    )

    saved = await client.post(
        "/admin/calendars",
        data=_calendar_form(
            csrf,
            day0="08:00-12:30, 13:30–18:00",
            day5="22:00–06:00",
            holiday_country="gb",
            holiday_region="ENG",
            closed_days="2026-12-24\n2026-12-31",
        ),
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/calendars"
    [row] = await _calendars(sessions)
    assert row.name == "London office" and row.zone == "Europe/London"
    assert row.week == {
        "0": [["08:00", "12:30"], ["13:30", "18:00"]],
        **{str(day): [["09:00", "17:00"]] for day in range(1, 5)},
        "5": [["22:00", "06:00"]],
    }
    assert (row.holiday_country, row.holiday_region) == ("GB", "ENG")
    assert row.closed_days == ["2026-12-24", "2026-12-31"]

    listing = await client.get("/admin/calendars", headers=HTML)
    assert "Calendar “London office” saved." in listing.text
    assert "Mon 08:00–12:30, 13:30–18:00" in listing.text
    assert "Tue–Fri 09:00–17:00" in listing.text and "Sat 22:00–06:00" in listing.text
    assert "Public holidays: GB / ENG" in listing.text and "2 closed days" in listing.text


async def test_the_24_7_shortcut_opens_every_day_whatever_the_weekdays_say(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    saved = await client.post(
        "/admin/calendars",
        data=_calendar_form(csrf, name="Always", always_open="on", day0="nonsense", zone="UTC"),
    )
    assert saved.status_code == 303
    [row] = await _calendars(sessions)
    assert row.week == {str(day): [["00:00", "24:00"]] for day in range(7)}
    assert "<li>24/7</li>" in (await client.get("/admin/calendars", headers=HTML)).text


async def test_a_calendar_without_working_hours_is_refused_with_the_reason(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    refused = await client.post(
        "/admin/calendars", data=_calendar_form(csrf, name="Never open", **CLOSED)
    )
    assert refused.status_code == 422
    assert "Calendar refused: a calendar needs some working hours" in refused.text
    assert 'id="err-week"' in refused.text
    assert 'value="Never open"' in refused.text  # what was typed is kept
    assert await _calendars(sessions) == []


@pytest.mark.parametrize(
    ("typed", "shown_at", "reason"),
    [
        ({"day6": "9-5"}, "week-6", "“9-5” is not HH:MM–HH:MM"),
        ({"day2": "25:00–26:00"}, "week-2", "invalid time &#39;25:00&#39;"),
        ({"zone": "Mars/Olympus_Mons"}, "zone", "unknown time zone"),
        ({"holiday_country": "XX"}, "holiday_country", "no public holidays known"),
        # the service names the country for a bad region too (see the admin guide)
        ({"holiday_country": "GB", "holiday_region": "ATLANTIS"}, "holiday_country", ""),
        ({"closed_days": "2026-12-24, 2026-13-01"}, "closed_days", "YYYY-MM-DD dates"),
        ({"name": "   "}, "name", "must not be empty"),
        ({"name": "x" * 121}, "name", "at most 120 characters"),
    ],
)
async def test_calendar_refusals_are_shown_beside_the_form_and_nothing_is_saved(
    client: AsyncClient,
    make_user: Make,
    sessions: Sessions,
    typed: dict[str, str],
    shown_at: str,
    reason: str,
) -> None:
    csrf = await _admin(client, make_user)
    refused = await client.post("/admin/calendars", data=_calendar_form(csrf, **typed))
    assert refused.status_code == 422, refused.text[-500:]
    assert reason in refused.text and f'id="err-{shown_at}"' in refused.text
    assert 'role="alert"' in refused.text
    for value in typed.values():
        if value.strip():
            assert value.replace("'", "&#39;") in refused.text  # kept in the form
    assert await _calendars(sessions) == []


async def test_a_calendar_name_is_taken_once(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    assert (await client.post("/admin/calendars", data=_calendar_form(csrf))).status_code == 303
    again = await client.post("/admin/calendars", data=_calendar_form(csrf, day0="07:00–19:00"))
    assert again.status_code == 409 and "A calendar with this name exists" in again.text
    assert 'value="07:00–19:00"' in again.text
    assert len(await _calendars(sessions)) == 1


async def test_the_preview_says_when_a_four_hour_target_would_fall_due(
    client: AsyncClient, make_user: Make, frozen: Callable[[str], None]
) -> None:
    csrf = await _admin(client, make_user)
    # Monday 14:00 in London, open 09:00-17:00: three hours today, the fourth tomorrow
    frozen("2026-11-23T14:00:00+00:00")
    shown = await client.post("/admin/calendars/preview", data=_calendar_form(csrf), headers=HTMX)
    assert shown.status_code == 200 and "<html" not in shown.text  # just the fragment
    assert "with a 4-hour target would be due at" in shown.text
    assert "Tue 24 Nov 2026, 10:00" in shown.text and "open now" in shown.text

    # an overnight shift counts for the day it starts: Friday 23:00 is inside Friday's shift
    frozen("2026-11-27T23:00:00+00:00")
    night = _calendar_form(csrf, zone="UTC", **{**CLOSED, "day4": "22:00-06:00"})
    shown = await client.post("/admin/calendars/preview", data=night, headers=HTMX)
    assert "Sat 28 Nov 2026, 03:00" in shown.text

    # business time is real elapsed time: the night the clocks go back lasts nine hours
    frozen("2026-10-24T21:00:00+00:00")  # Saturday 22:00 BST
    dst = _calendar_form(csrf, **{**CLOSED, "day5": "22:00–06:00"})
    shown = await client.post("/admin/calendars/preview", data=dst, headers=HTMX)
    assert "Sun 25 Oct 2026, 01:00" in shown.text and "GMT" in shown.text

    refused = await client.post(
        "/admin/calendars/preview",
        data=_calendar_form(csrf, **CLOSED),
        headers=HTMX,
    )
    assert refused.status_code == 200 and "a calendar needs some working hours" in refused.text


async def test_the_preview_button_works_without_javascript(
    client: AsyncClient, make_user: Make, sessions: Sessions, frozen: Callable[[str], None]
) -> None:
    csrf = await _admin(client, make_user)
    frozen("2026-11-23T16:00:00+00:00")
    page = await client.post(
        "/admin/calendars/preview", data=_calendar_form(csrf, name="Draft"), headers=HTML
    )
    assert page.status_code == 200 and "<html" in page.text
    assert 'value="Draft"' in page.text and "Tue 24 Nov 2026, 12:00" in page.text
    assert await _calendars(sessions) == []  # a preview saves nothing


# -- policies -------------------------------------------------------------------------------


async def test_admin_creates_a_policy_and_reads_it_back_in_words(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    office = await _calendar(sessions)
    form = await client.get("/admin/sla/policies/new", headers=HTML)
    assert form.status_code == 200
    assert f'<option value="{office.id}" selected>' in form.text  # the only calendar, chosen

    saved = await client.post(
        "/admin/sla/policies", data=_policy_form(csrf, office.id, tags="VIP-Gold, refund")
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/sla/policies"
    [policy] = await _policies(sessions)
    assert policy.conditions == {
        "tier": ["vip"],
        "channel": ["email", "web"],
        "tags": ["vip-gold", "refund"],
    }
    assert policy.targets == {
        "first_reply": {"minutes": 60, "business": True},
        "resolution": {"minutes": 2880, "business": True},
    }
    assert policy.pause_statuses == ["pending", "on-hold"] and policy.calendar_id == office.id

    listing = await client.get("/admin/sla/policies", headers=HTML)
    assert (
        "VIP tier, e-mail or web, tagged vip-gold or refund:</strong> "
        "first reply 1 h business, resolution 2 d business"
    ) in listing.text
    assert "Calendar: Office" in listing.text

    edit = await client.get(f"/admin/sla/policies/{policy.id}", headers=HTML)
    assert 'name="resolution_amount" inputmode="decimal" value="2"' in edit.text
    assert "<option selected>d</option>" in edit.text


@pytest.mark.parametrize(
    ("typed", "shown_at", "reason"),
    [
        ({"calendar_id": ""}, "calendar_id", "required for business time"),
        ({"first_reply_amount": "", "resolution_amount": ""}, "targets", "A policy needs a target"),
        ({"first_reply_amount": "soon"}, "targets-first_reply", "a number of minutes"),
        ({"first_reply_amount": "0"}, "targets-first_reply", "1 to 525600"),
        (
            {"first_reply_amount": "0.5", "first_reply_unit": "min"},
            "targets-first_reply",
            "whole minutes",
        ),
        ({"resolution_amount": "400", "resolution_unit": "d"}, "targets-resolution", "1 to 525600"),
        ({"warn_minutes": "99999"}, "warn_minutes", "0 to 10080"),
        ({"pause": ["solved"]}, "pause_statuses", "pending, on-hold"),
        ({"name": ""}, "name", "must not be empty"),
        ({"calendar_id": "999999"}, "calendar_id", "unknown calendar"),
    ],
)
async def test_policy_refusals_are_shown_beside_the_form_and_nothing_is_saved(
    client: AsyncClient,
    make_user: Make,
    sessions: Sessions,
    typed: dict[str, Any],
    shown_at: str,
    reason: str,
) -> None:
    csrf = await _admin(client, make_user)
    office = await _calendar(sessions)
    refused = await client.post("/admin/sla/policies", data=_policy_form(csrf, office.id, **typed))
    assert refused.status_code == 422, refused.text[-800:]
    assert reason in refused.text and f'id="err-{shown_at}"' in refused.text
    assert 'value="vip"' in refused.text  # the typed tier is kept
    assert await _policies(sessions) == []


async def test_editing_a_policy_saves_checks_the_version_and_refuses_a_taken_name(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    office = await _calendar(sessions)
    first = await _policy(sessions, "First", office.id)
    second = await _policy(sessions, "Second", office.id)

    saved = await client.post(
        f"/admin/sla/policies/{first.id}",
        data=_policy_form(csrf, office.id, name="First, renamed", version=str(first.version)),
    )
    assert saved.status_code == 303
    renamed = (await _policies(sessions))[0]
    assert renamed.name == "First, renamed" and renamed.version == first.version + 1
    assert renamed.targets["resolution"] == {"minutes": 2880, "business": True}

    stale = await client.post(
        f"/admin/sla/policies/{first.id}",
        data=_policy_form(csrf, office.id, name="Lost edit", version=str(first.version)),
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.text
    assert 'value="Lost edit"' in stale.text

    taken = await client.post(
        f"/admin/sla/policies/{second.id}",
        data=_policy_form(csrf, office.id, name="First, renamed", version=str(second.version)),
    )
    assert taken.status_code == 409 and "already taken" in taken.text

    no_calendar = await client.post(
        f"/admin/sla/policies/{second.id}",
        data=_policy_form(csrf, "", name="Second", version=str(second.version)),
    )
    assert no_calendar.status_code == 422 and "required for business time" in no_calendar.text
    assert [p.name for p in await _policies(sessions)] == ["First, renamed", "Second"]
    assert (await _policies(sessions))[1].calendar_id == office.id


async def test_policies_are_activated_deactivated_and_moved_in_order(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    csrf = await _admin(client, make_user)
    office = await _calendar(sessions)
    a, b, c = [await _policy(sessions, name, office.id) for name in ("A", "B", "C")]

    off = await client.post(
        f"/admin/sla/policies/{b.id}/active",
        data={"csrf_token": csrf, "active": "false", "version": str(b.version)},
    )
    assert off.status_code == 303
    assert [p.active for p in await _policies(sessions)] == [True, False, True]
    listing = await client.get("/admin/sla/policies", headers=HTML)
    assert "Policy “B” deactivated." in listing.text and "policy is-inactive" in listing.text

    stale = await client.post(
        f"/admin/sla/policies/{b.id}/active",
        data={"csrf_token": csrf, "active": "true", "version": str(b.version)},
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.text

    moved = await client.post(
        f"/admin/sla/policies/{c.id}/move",
        data={"csrf_token": csrf, "direction": "up", "version": str(c.version)},
    )
    assert moved.status_code == 303
    assert [p.name for p in await _policies(sessions)] == ["A", "C", "B"]
    await client.post(
        f"/admin/sla/policies/{a.id}/move",
        data={"csrf_token": csrf, "direction": "down", "version": str(a.version)},
    )
    in_order = await _policies(sessions)
    assert [p.name for p in in_order] == ["C", "A", "B"]
    assert [p.position for p in in_order] == [0, 1, 2]
    assert _order((await client.get("/admin/sla/policies", headers=HTML)).text) == ["C", "A", "B"]

    # the top one cannot go higher: nothing changes
    top = in_order[0]
    await client.post(
        f"/admin/sla/policies/{top.id}/move",
        data={"csrf_token": csrf, "direction": "up", "version": str(top.version)},
    )
    assert [p.name for p in await _policies(sessions)] == ["C", "A", "B"]


# -- access ---------------------------------------------------------------------------------

PAGES = ["/admin/calendars", "/admin/sla/policies", "/admin/sla/policies/new"]
FORMS = [
    "/admin/calendars",
    "/admin/calendars/preview",
    "/admin/sla/policies",
    "/admin/sla/policies/1",
    "/admin/sla/policies/1/active",
    "/admin/sla/policies/1/move",
]


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


@pytest.mark.parametrize("role", ["agent", "analyst"])
async def test_only_admins_see_or_change_service_standards(
    client: AsyncClient, make_user: Make, sessions: Sessions, role: str
) -> None:
    user = await make_user(role)
    csrf = await sign_in(client, user.email)
    for path in PAGES:
        response = await client.get(path, headers=HTML)
        assert response.status_code == 403 and "Not allowed" in response.text
    for path in FORMS:
        response = await client.post(path, data=_calendar_form(csrf), headers=HTML)
        assert response.status_code == 403
    assert await _calendars(sessions) == []


async def test_forms_without_the_csrf_token_are_refused(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    await _admin(client, make_user)
    office = await _calendar(sessions)
    policy = await _policy(sessions, "Only", office.id)
    form = _calendar_form("", name="Forged")
    del form["csrf_token"]
    assert (await client.post("/admin/calendars", data=form, headers=HTML)).status_code == 403
    forged = _policy_form("wrong", office.id)
    assert (await client.post("/admin/sla/policies", data=forged)).status_code == 403
    off = {"csrf_token": "wrong", "active": "false", "version": str(policy.version)}
    assert (
        await client.post(f"/admin/sla/policies/{policy.id}/active", data=off)
    ).status_code == 403
    assert [c.name for c in await _calendars(sessions)] == ["Office"]
    assert [(p.name, p.active) for p in await _policies(sessions)] == [("Only", True)]


async def test_names_are_escaped(client: AsyncClient, make_user: Make, sessions: Sessions) -> None:
    csrf = await _admin(client, make_user)
    script = "<script>alert(1)</script>"
    await client.post("/admin/calendars", data=_calendar_form(csrf, name=script))
    [office] = await _calendars(sessions)
    await client.post("/admin/sla/policies", data=_policy_form(csrf, office.id, name=script))
    for path in ("/admin/calendars", "/admin/sla/policies"):
        page = (await client.get(path, headers=HTML)).text
        assert script not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
