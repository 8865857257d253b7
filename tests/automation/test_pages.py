"""The service rules overview, automation and macro admin pages, through the real app."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.auth import service as auth
from servicecycle.auth.models import Team
from servicecycle.automation import macros, service
from servicecycle.automation.models import Macro, Rule
from servicecycle.events.service import Actor
from servicecycle.sla import service as sla
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
Sessions = async_sessionmaker[AsyncSession]
HTML = {"accept": "text/html"}
HTMX = {"accept": "text/html", "hx-request": "true"}
SYSTEM = Actor.system("test")
VIP = [{"field": "customer.tier", "op": "is", "value": "vip"}]
URGENT = [{"type": "set_priority", "value": "urgent"}]


async def _admin(client: AsyncClient, make_user: Make) -> tuple[Any, str]:
    admin = await make_user("admin")
    return admin, await sign_in(client, admin.email)


async def _rules(sessions: Sessions) -> list[Rule]:
    async with sessions() as session:
        return await service.list_rules(session)


async def _macros(sessions: Sessions, user_id: int) -> list[Macro]:
    async with sessions() as session:
        return await macros.macros_for(session, user_id)


async def _rule(sessions: Sessions, name: str, **extra: Any) -> Rule:
    fields: dict[str, Any] = {
        "kind": "trigger",
        "events": ["ticket.created"],
        "conditions": VIP,
        "actions": URGENT,
    }
    async with sessions() as session, session.begin():
        return await service.create_rule(session, name=name, actor=SYSTEM, **{**fields, **extra})


def _rule_form(csrf: str, **extra: Any) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "VIP first",
        "kind": "trigger",
        "events": json.dumps(["ticket.created"]),
        "conditions": json.dumps(VIP),
        "actions": json.dumps(URGENT),
    }
    return {**form, **extra}


def _tile(page: str, name: str) -> int:
    found = re.search(rf'data-tile="{name}">\s*<span class="tile-count">(\d+)</span>', page)
    assert found, f"no tile {name}"
    return int(found.group(1))


# -- overview -------------------------------------------------------------------------------


async def test_the_overview_counts_each_kind_of_rule_and_links_to_it(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    admin, _ = await _admin(client, make_user)
    other = await make_user("agent")
    async with sessions() as session, session.begin():
        office = await sla.create_calendar(
            session,
            name="Office",
            zone="UTC",
            week={"0": [["09:00", "17:00"]]},
            holiday_country=None,
            holiday_region=None,
            closed_days=[],
            actor=SYSTEM,
        )
        for name in ("VIP", "Everyone"):
            await sla.create_policy(
                session,
                name=name,
                conditions={},
                targets={"first_reply": {"minutes": 60, "business": True}},
                calendar_id=office.id,
                pause_statuses=[],
                warn_minutes=30,
                actor=SYSTEM,
            )
        for owner, shared in ((admin.id, True), (admin.id, False), (other.id, False)):
            await macros.create_macro(
                session,
                name=f"Macro {owner} {shared}",
                body="Thanks!",
                public=True,
                actions=[],
                shared=shared,
                owner_id=owner,
                is_admin=True,
                actor=SYSTEM,
            )
    await _rule(sessions, "VIP first")
    await _rule(
        sessions,
        "Chase",
        kind="time",
        events=[],
        conditions=[{"field": "ticket.hours_since_update", "op": "gte", "value": 72}],
    )

    page = await client.get("/admin/service", headers=HTML)
    assert page.status_code == 200
    counts = {
        tile: _tile(page.text, tile)
        for tile in ("calendars", "policies", "triggers", "time_rules", "macros")
    }
    assert counts == {"calendars": 1, "policies": 2, "triggers": 1, "time_rules": 1, "macros": 2}
    assert "1 shared, 1 yours" in page.text and "2 active" in page.text
    for link in ("/admin/calendars", "/admin/sla/policies", "/admin/rules", "/admin/macros"):
        assert f'href="{link}' in page.text
    assert "switched off by the system" not in page.text


# -- automations ----------------------------------------------------------------------------


async def test_admin_creates_a_trigger_from_json_and_sees_it_listed(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    _, csrf = await _admin(client, make_user)
    new = await client.get("/admin/rules/new", headers=HTML)
    assert new.status_code == 200 and "<code>customer.tier</code>" in new.text
    assert "set_priority" in new.text and "sla.breached" in new.text  # the reference

    saved = await client.post("/admin/rules", data=_rule_form(csrf))
    [rule] = await _rules(sessions)
    assert saved.status_code == 303 and saved.headers["location"] == f"/admin/rules/{rule.id}"
    assert (rule.kind, rule.events, rule.conditions, rule.actions) == (
        "trigger",
        ["ticket.created"],
        VIP,
        URGENT,
    )
    page = await client.get(f"/admin/rules/{rule.id}", headers=HTML)
    assert "Rule “VIP first” saved." in page.text
    # pretty-printed, keys in reading order
    assert "&#34;field&#34;: &#34;customer.tier&#34;,\n    &#34;op&#34;: &#34;is&#34;" in page.text

    listing = await client.get("/admin/rules", headers=HTML)
    assert '<code>customer.tier</code> <span class="op">is</span> <strong>vip</strong>' in (
        listing.text
    )
    assert "Set priority to <strong>urgent</strong>" in listing.text


async def test_the_list_names_the_agents_and_teams_that_actions_refer_to(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    await _admin(client, make_user)
    agent = await make_user("agent", name="Nora Quinn")
    async with sessions() as session, session.begin():
        team = await auth.create_team(session, name="Billing", description="", actor=SYSTEM)
    await _rule(
        sessions,
        "Hand over",
        actions=[
            {"type": "assign_team", "value": team.id},
            {"type": "assign_agent", "value": agent.id},
            {"type": "notify", "value": {"to": agent.id, "text": "Yours now"}},
            {"type": "notify", "value": {"to": "team", "text": "FYI"}},
        ],
    )
    listing = (await client.get("/admin/rules", headers=HTML)).text
    assert "Assign to team <strong>Billing</strong>" in listing
    assert "Assign to agent <strong>Nora Quinn</strong>" in listing
    assert "Notify <strong>Nora Quinn</strong>: <q>Yours now</q>" in listing
    assert "Notify <strong>the team</strong>: <q>FYI</q>" in listing


@pytest.mark.parametrize(
    ("typed", "shown_at", "reason"),
    [
        ({"conditions": '[{"field": "customer.tier",}]'}, "conditions", "at line 1, column"),
        ({"actions": '[{"type": "set_priority", "value": "asap"}]'}, "actions", "actions[0].value"),
        (
            {"actions": json.dumps([*URGENT, {"type": "assign_team", "value": "two"}])},
            "actions",
            "actions[1].value",
        ),
        (
            {"conditions": '[{"field": "ticket.mood", "op": "is"}]'},
            "conditions",
            "conditions[0].field",
        ),
        ({"events": '["ticket.exploded"]'}, "events", "a non-empty list of"),
        ({"actions": "[]"}, "actions", "a non-empty list"),
        ({"name": " "}, "name", "must not be empty"),
        ({"kind": "time", "events": "[]"}, "conditions", "add ticket.hours_since_update"),
    ],
)
async def test_rule_refusals_name_the_path_beside_the_json_and_nothing_is_saved(
    client: AsyncClient,
    make_user: Make,
    sessions: Sessions,
    typed: dict[str, str],
    shown_at: str,
    reason: str,
) -> None:
    _, csrf = await _admin(client, make_user)
    refused = await client.post("/admin/rules", data=_rule_form(csrf, **typed))
    assert refused.status_code == 422, refused.text[-600:]
    beside = refused.text.split(f'id="err-{shown_at}"')[1].split("</p>")[0]
    assert reason in beside
    for value in typed.values():
        if value.strip():
            assert value.replace('"', "&#34;") in refused.text  # the typed JSON is kept as is
    assert await _rules(sessions) == []


async def test_a_time_rule_needs_a_waiting_time_and_ignores_events(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    _, csrf = await _admin(client, make_user)
    form = await client.get("/admin/rules/new?kind=time", headers=HTML)
    assert '<option value="time" selected>' in form.text
    wait = [
        {"field": "ticket.status", "op": "is", "value": "pending"},
        {"field": "ticket.hours_since_update", "op": "gte", "value": 72},
    ]
    saved = await client.post(
        "/admin/rules",
        data=_rule_form(
            csrf,
            name="Chase pending",
            kind="time",
            events="not even JSON",
            conditions=json.dumps(wait),
        ),
    )
    assert saved.status_code == 303
    [rule] = await _rules(sessions)
    assert (rule.kind, rule.events, rule.conditions) == ("time", [], wait)

    # an edit may not drop the waiting time either
    refused = await client.post(
        f"/admin/rules/{rule.id}",
        data=_rule_form(
            csrf, name="Chase pending", conditions=json.dumps(wait[:1]), version=str(rule.version)
        ),
    )
    assert refused.status_code == 422 and "A time rule needs a waiting time" in refused.text
    assert (await _rules(sessions))[0].conditions == wait


async def test_editing_a_rule_checks_the_version_and_refuses_a_taken_name(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    _, csrf = await _admin(client, make_user)
    first = await _rule(sessions, "First")
    await _rule(sessions, "Second")
    tags = [{"type": "add_tags", "value": ["vip"]}]
    saved = await client.post(
        f"/admin/rules/{first.id}",
        data=_rule_form(csrf, name="First", actions=json.dumps(tags), version=str(first.version)),
    )
    assert saved.status_code == 303
    assert (await _rules(sessions))[0].actions == tags

    stale = await client.post(
        f"/admin/rules/{first.id}",
        data=_rule_form(csrf, name="Lost edit", version=str(first.version)),
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.text
    assert 'value="Lost edit"' in stale.text

    taken = await client.post(
        f"/admin/rules/{first.id}",
        data=_rule_form(csrf, name="Second", version=str(first.version + 1)),
    )
    assert taken.status_code == 409 and "already taken" in taken.text
    assert [r.name for r in await _rules(sessions)] == ["First", "Second"]


async def test_a_rule_switched_off_by_the_system_says_why_until_it_is_activated(
    client: AsyncClient, make_user: Make, sessions: Sessions, make_ticket: Make
) -> None:
    _, csrf = await _admin(client, make_user)
    async with sessions() as session, session.begin():
        team = await auth.create_team(session, name="Billing", description="", actor=SYSTEM)
    rule = await _rule(
        sessions,
        "Route to billing",
        conditions=[],
        actions=[{"type": "assign_team", "value": team.id}],
    )
    async with sessions() as session, session.begin():
        await session.execute(delete(Team).where(Team.id == team.id))
    await make_ticket("Invoice is wrong")  # the trigger runs, the team is gone: switched off
    [off] = await _rules(sessions)
    assert not off.active and off.disabled_reason

    listing = await client.get("/admin/rules", headers=HTML)
    assert "switched off</span>" in listing.text
    assert "Switched off by the system:</strong> No such team (team_id: unknown team)" in (
        listing.text
    )
    overview = await client.get("/admin/service", headers=HTML)
    assert "1 automation switched off by the system" in overview.text
    assert f'href="/admin/rules/{rule.id}">Route to billing</a>' in overview.text
    page = await client.get(f"/admin/rules/{rule.id}", headers=HTML)
    assert 'class="disabled-reason big" role="alert"' in page.text

    on = await client.post(
        f"/admin/rules/{rule.id}/active",
        data={"csrf_token": csrf, "active": "true", "version": str(off.version)},
    )
    assert on.status_code == 303 and on.headers["location"] == "/admin/rules"
    [again] = await _rules(sessions)
    assert again.active and again.disabled_reason is None
    assert "Switched off by the system" not in (await client.get("/admin/rules", headers=HTML)).text

    back = await client.post(
        f"/admin/rules/{rule.id}/active",
        data={
            "csrf_token": csrf,
            "active": "false",
            "version": str(again.version),
            "back": f"/admin/rules/{rule.id}",
        },
    )
    assert back.headers["location"] == f"/admin/rules/{rule.id}"
    assert not (await _rules(sessions))[0].active
    stale = await client.post(
        f"/admin/rules/{rule.id}/active",
        data={"csrf_token": csrf, "active": "true", "version": str(again.version)},
    )
    assert stale.status_code == 412 and "changed by someone else" in stale.text


async def test_a_dry_run_lists_the_matching_open_tickets_as_links(
    client: AsyncClient,
    make_user: Make,
    sessions: Sessions,
    make_ticket: Make,
    make_customer: Make,
) -> None:
    _, csrf = await _admin(client, make_user)
    vip = await make_customer("Vera Vip", tier="vip")
    hers = await make_ticket("Upgrade", requester=vip)
    other = await make_ticket("Question")
    rule = await _rule(sessions, "VIPs", events=["message.added"])

    fragment = await client.post(
        f"/admin/rules/{rule.id}/dry-run", data={"csrf_token": csrf}, headers=HTMX
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert f'<a href="/tickets/{hers.id}">#{hers.id}</a>' in fragment.text
    assert f"/tickets/{other.id}" not in fragment.text
    assert "1 open ticket</strong> matches" in fragment.text

    page = await client.post(f"/admin/rules/{rule.id}/dry-run", data={"csrf_token": csrf})
    assert page.status_code == 200 and "<html" in page.text
    assert f'href="/tickets/{hers.id}"' in page.text

    none = await _rule(sessions, "Nobody", conditions=[VIP[0] | {"value": "platinum"}])
    empty = await client.post(
        f"/admin/rules/{none.id}/dry-run", data={"csrf_token": csrf}, headers=HTMX
    )
    assert "No open ticket</strong> matches" in empty.text
    assert len(await _rules(sessions)) == 2  # a dry run changes nothing


# -- macros ---------------------------------------------------------------------------------


async def test_admin_creates_a_shared_macro_and_sees_only_shared_and_own_ones(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    admin, csrf = await _admin(client, make_user)
    agent = await make_user("agent")
    async with sessions() as session, session.begin():
        await macros.create_macro(
            session,
            name="Agent's own",
            body="Mine",
            public=True,
            actions=[],
            shared=False,
            owner_id=agent.id,
            is_admin=False,
            actor=SYSTEM,
        )
    page = await client.get("/admin/macros", headers=HTML)
    assert page.status_code == 200 and "Agent&#39;s own" not in page.text
    for placeholder in macros.PLACEHOLDERS:
        assert f'data-insert="{{{{{placeholder}}}}}"' in page.text

    body = "Hi {{customer.first_name}}, the refund for #{{ticket.number}} is on its way."
    saved = await client.post(
        "/admin/macros",
        data={
            "csrf_token": csrf,
            "name": "Refund sent",
            "body": body,
            "kind": "reply",
            "actions": json.dumps([{"type": "set_status", "value": "solved"}]),
            "shared": "on",
        },
    )
    assert saved.status_code == 303
    personal = await client.post(
        "/admin/macros",
        data={"csrf_token": csrf, "name": "Note to self", "body": "Check logs", "kind": "note"},
    )
    assert personal.status_code == 303
    mine = {m.name: m for m in await _macros(sessions, admin.id)}
    assert mine["Refund sent"].owner_id is None and mine["Refund sent"].body == body
    assert mine["Note to self"].owner_id == admin.id and not mine["Note to self"].public
    listing = await client.get("/admin/macros", headers=HTML)
    assert "Macro “Note to self” saved." in listing.text
    assert "Set status to <strong>solved</strong>" in listing.text
    assert "shared</span>" in listing.text and "yours</span>" in listing.text
    assert "internal note</span>" in listing.text
    assert [m.name for m in await _macros(sessions, agent.id)] == ["Agent's own", "Refund sent"]


@pytest.mark.parametrize(
    ("typed", "shown_at", "reason"),
    [
        ({"body": "Order {{order.id}} is late"}, "body", "unknown order.id"),
        ({"body": "", "actions": ""}, "body", "empty"),
        ({"actions": '[{"type": "set_status"'}, "actions", "at line 1"),
        ({"actions": '[{"type": "set_status", "value": "gone"}]'}, "actions", "actions[0].value"),
        ({"name": ""}, "name", "must not be empty"),
    ],
)
async def test_macro_refusals_are_shown_beside_the_form_and_nothing_is_saved(
    client: AsyncClient,
    make_user: Make,
    sessions: Sessions,
    typed: dict[str, str],
    shown_at: str,
    reason: str,
) -> None:
    admin, csrf = await _admin(client, make_user)
    form = {"csrf_token": csrf, "name": "Late", "body": "Sorry!", "kind": "reply", "shared": "on"}
    refused = await client.post("/admin/macros", data={**form, **typed})
    assert refused.status_code == 422, refused.text[-600:]
    assert reason in refused.text.split(f'id="err-{shown_at}"')[1].split("</p>")[0]
    for value in typed.values():
        if value:
            assert value.replace('"', "&#34;") in refused.text
    assert await _macros(sessions, admin.id) == []


# -- access ---------------------------------------------------------------------------------

PAGES = ["/admin/service", "/admin/rules", "/admin/rules/new", "/admin/macros"]
FORMS = [
    "/admin/rules",
    "/admin/rules/1",
    "/admin/rules/1/active",
    "/admin/rules/1/dry-run",
    "/admin/macros",
]


async def test_anonymous_visitors_are_sent_to_sign_in(client: AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path, headers=HTML)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


@pytest.mark.parametrize("role", ["agent", "analyst"])
async def test_only_admins_manage_automations_and_macros_here(
    client: AsyncClient, make_user: Make, sessions: Sessions, role: str
) -> None:
    user = await make_user(role)
    csrf = await sign_in(client, user.email)
    for path in PAGES:
        response = await client.get(path, headers=HTML)
        assert response.status_code == 403 and "Not allowed" in response.text
    for path in FORMS:
        response = await client.post(path, data=_rule_form(csrf), headers=HTML)
        assert response.status_code == 403
    assert await _rules(sessions) == []
    assert await _macros(sessions, user.id) == []


async def test_forms_without_the_csrf_token_are_refused(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    admin, _ = await _admin(client, make_user)
    rule = await _rule(sessions, "Kept")
    assert (await client.post("/admin/rules", data=_rule_form("forged"))).status_code == 403
    off = {"csrf_token": "forged", "active": "false", "version": str(rule.version)}
    assert (await client.post(f"/admin/rules/{rule.id}/active", data=off)).status_code == 403
    macro = {"name": "Forged", "body": "x", "kind": "reply"}
    assert (await client.post("/admin/macros", data=macro)).status_code == 403
    assert [(r.name, r.active) for r in await _rules(sessions)] == [("Kept", True)]
    assert await _macros(sessions, admin.id) == []


async def test_names_and_bodies_are_escaped(
    client: AsyncClient, make_user: Make, sessions: Sessions
) -> None:
    _, csrf = await _admin(client, make_user)
    script = "<script>alert(1)</script>"
    await client.post("/admin/rules", data=_rule_form(csrf, name=script))
    await client.post(
        "/admin/macros", data={"csrf_token": csrf, "name": script, "body": script, "kind": "reply"}
    )
    [rule] = await _rules(sessions)
    for path in ("/admin/rules", f"/admin/rules/{rule.id}", "/admin/macros"):
        page = (await client.get(path, headers=HTML)).text
        assert script not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
