"""An admin changes a calendar's hours, is refused deleting a calendar a policy uses, then
deletes the policy and the calendar, in Chromium."""

from __future__ import annotations

import pytest

from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.sla import service as sla
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user

DASH = "\u2013"
ADMIN = Actor.system("test")


async def _office_and_policy(server: LiveServer) -> None:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            office = await sla.create_calendar(
                session,
                name="Office",
                zone="Europe/London",
                week={str(d): [["09:00", "17:00"]] for d in range(5)},
                holiday_country=None,
                holiday_region=None,
                closed_days=[],
                actor=ADMIN,
            )
            await sla.create_policy(
                session,
                name="Standard",
                conditions={},
                targets={"periodic_update": {"minutes": 240, "business": True}},
                calendar_id=office.id,
                pause_statuses=["pending"],
                warn_minutes=30,
                actor=ADMIN,
            )
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_an_admin_edits_and_deletes_a_calendar(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "ana@example.com", "Ana Silva", "admin")
    await _office_and_policy(live_server)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url + "/login")
    await page.fill("#email", "ana@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(live_server.url + "/admin/calendars")

    await page.click("a[aria-label='Edit Office']")
    await page.wait_for_selector("text=Edit “Office”")
    assert await page.input_value("#c-day0") == f"09:00{DASH}17:00"
    await page.fill("#c-day5", "10:00-14:00")
    await page.click("text=Save changes")
    await page.wait_for_selector("text=Calendar “Office” saved.")
    hours = await page.inner_text("tr[data-calendar]")
    assert f"Sat 10:00{DASH}14:00" in hours

    await page.click("a[aria-label='Edit Office']")
    await page.click("text=Delete calendar")
    refusal = await page.inner_text("#refusal")
    assert "used by Standard" in refusal
    await page.screenshot(path=shot_path("admin-calendar-in-use"), full_page=True)

    await page.goto(live_server.url + "/admin/sla/policies")
    assert "periodic update 4 h business" in await page.inner_text(".policy-list")
    await page.click("a.policy-name")
    await page.click("text=Delete policy")
    await page.wait_for_selector("text=Policy “Standard” deleted.")
    await page.goto(live_server.url + "/admin/calendars")
    await page.click("a[aria-label='Edit Office']")
    await page.click("text=Delete calendar")
    await page.wait_for_selector("text=Calendar “Office” deleted.")
    assert await page.locator("tr[data-calendar]").count() == 0
    assert errors == []
    await context.close()
