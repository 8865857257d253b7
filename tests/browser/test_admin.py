"""An admin sets service standards through the pages in Chromium: a calendar (with its live
preview), an SLA policy, and automations, one of which the system has switched off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.sla.service import build_calendar
from servicecycle.tickets import service as tickets
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user

DASH = "\u2013"


async def _team(server: LiveServer, name: str, *, delete: bool = False) -> int:
    """Make a team (or, with ``delete``, remove it behind the app's back: the app has no
    team deletion, but a rule must survive its team going away)."""
    from sqlalchemy import text

    from servicecycle.auth import service as auth

    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            if delete:
                await session.execute(text("DELETE FROM teams WHERE name = :n"), {"n": name})
                return 0
            team = await auth.create_team(
                session, name=name, description="", actor=Actor.system("test")
            )
            return team.id
    finally:
        await engine.dispose()


async def _ticket_arrives(server: LiveServer, subject: str) -> None:
    """A customer writes in (through the services, as a channel would)."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            customer = await customers.create_customer(
                session,
                name="Oliver Grant",
                emails=["oliver@example.co.uk"],
                actor=Actor.system("test"),
            )
            await tickets.create_ticket(
                session,
                subject=subject,
                requester=customer,
                channel="email",
                body_text="Hello, the invoice shows the wrong address.",
                actor=Actor("customer", str(customer.id)),
            )
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_an_admin_sets_up_a_calendar_a_policy_and_automations(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "maria@example.com", "Maria Garcia", "admin")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("nav >> text=Service rules")
    await page.wait_for_url(live_server.url + "/admin/service")
    await page.click(".admin-tabs >> text=Calendars")
    await page.wait_for_url(live_server.url + "/admin/calendars")

    # a calendar: London hours, a Saturday night shift, English holidays
    await page.fill("#c-name", "London office")
    await page.select_option("#c-zone", "Europe/London")
    await page.fill("#c-day0", "08:00-18:00")
    await page.click("[data-copy-monday]")
    assert await page.input_value("#c-day4") == "08:00-18:00"
    await page.fill("#c-day5", f"22:00{DASH}06:00")
    await page.fill("#c-country", "GB")
    await page.fill("#c-region", "ENG")
    await page.fill("#c-closed", "2026-12-24")
    # the preview follows what is typed (htmx), without saving anything
    preview = page.locator("#calendar-preview")
    await page.wait_for_selector("#calendar-preview >> text=Europe/London")
    assert "with a 4-hour target would be due at" in await preview.inner_text()
    shown = datetime.fromisoformat(
        await page.get_attribute("[data-testid=preview-due]", "datetime") or ""
    )
    week = {str(d): [["08:00", "18:00"]] for d in range(5)} | {"5": [["22:00", "06:00"]]}
    expected = build_calendar(
        zone="Europe/London",
        week=week,
        holiday_country="GB",
        holiday_region="ENG",
        closed_days=["2026-12-24"],
    ).add_minutes(datetime.now(UTC), 240)
    assert abs(shown - expected) < timedelta(minutes=2)

    # 24/7 sets the weekdays aside, and back
    await page.check("#c-always")
    assert not await page.is_editable("#c-day0")
    await page.uncheck("#c-always")
    assert await page.is_editable("#c-day0")
    await page.wait_for_timeout(700)  # let the last preview land before the picture
    await page.screenshot(path=shot_path("admin-calendar"), full_page=True)

    await page.click("text=Save calendar")
    await page.wait_for_selector("text=Calendar “London office” saved.")
    row = page.locator("tr[data-calendar]")
    hours = await row.inner_text()
    assert f"Mon{DASH}Fri 08:00{DASH}18:00" in hours and f"Sat 22:00{DASH}06:00" in hours

    # an SLA policy on that calendar
    await page.click(".admin-tabs >> text=SLA policies")
    await page.click("text=New policy")
    await page.fill("#p-name", "VIP e-mail")
    await page.check("input[name=channel][value=email]")
    await page.check("input[name=channel][value=web]")
    await page.fill("#p-tier", "vip")
    await page.fill("#t-first_reply", "1")
    await page.fill("#t-resolution", "2")
    await page.select_option("select[name=resolution_unit]", "d")
    assert await page.input_value("#p-calendar") != ""  # the calendar is chosen for us
    await page.click("text=Create policy")
    await page.wait_for_selector("text=Policy “VIP e-mail” saved.")
    assert (
        "VIP tier, e-mail or web: first reply 1 h business, resolution 2 d business"
        in await page.inner_text(".policy-list")
    )

    # automations: an escalation on breaches, and a rule that will meet a team that is gone
    billing = await _team(live_server, "Billing")
    await page.click(".admin-tabs >> text=Automations")
    for name, events, conditions, actions in (
        (
            "Escalate first-reply breaches",
            '["sla.breached"]',
            '[{"field": "sla.metric", "op": "is", "value": "first_reply"}]',
            '[{"type": "set_priority", "value": "urgent"}, '
            '{"type": "add_tags", "value": ["escalated"]}]',
        ),
        (
            "Invoices to billing",
            '["ticket.created"]',
            '[{"field": "ticket.subject", "op": "contains", "value": "invoice"}]',
            f'[{{"type": "assign_team", "value": {billing}}}]',
        ),
    ):
        await page.goto(live_server.url + "/admin/rules/new")
        await page.fill("#r-name", name)
        await page.fill("#r-events", events)
        await page.fill("#r-conditions", conditions)
        await page.fill("#r-actions", actions)
        await page.click("[data-format-json]")
        assert (await page.input_value("#r-actions")).startswith("[\n  {\n")
        await page.click("text=Create rule")
        await page.wait_for_selector(f"text=Rule “{name}” saved.")
    await page.click(".admin-tabs >> text=Automations")
    await page.click("text=New time rule")
    await page.fill("#r-name", "Chase pending tickets")
    await page.fill(
        "#r-conditions",
        '[{"field": "ticket.status", "op": "is", "value": "pending"}, '
        '{"field": "ticket.hours_since_update", "op": "gte", "value": 72}]',
    )
    await page.fill(
        "#r-actions", '[{"type": "add_note", "value": "Pending for 3 days: chase the customer."}]'
    )
    await page.click("text=Create rule")
    await page.wait_for_selector("text=Rule “Chase pending tickets” saved.")

    await _team(live_server, "Billing", delete=True)
    await _ticket_arrives(live_server, "Invoice shows the wrong address")
    await page.click(".admin-tabs >> text=Automations")
    reason = page.locator(".disabled-reason")
    assert "No such team" in await reason.inner_text()
    await page.screenshot(path=shot_path("admin-rules"), full_page=True)

    # a dry run of the saved conditions links the ticket they match
    await page.click("text=Invoices to billing")
    await page.click("text=Dry run")
    await page.wait_for_selector(".ticket-links a")
    assert (await page.inner_text(".ticket-links")).startswith("#")

    await page.click(".admin-tabs >> text=Overview")
    assert "1 automation switched off by the system" in await page.inner_text("main")
    assert await page.inner_text("[data-tile=calendars] .tile-count") == "1"
    assert await page.inner_text("[data-tile=triggers] .tile-count") == "2"
    await page.screenshot(path=shot_path("admin-service"), full_page=True)
    assert errors == []
    await context.close()
