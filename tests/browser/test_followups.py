"""An agent opens Follow-ups in Chromium, sends a check-in and closes the loop."""

from __future__ import annotations

from datetime import timedelta

import pytest

from servicecycle.auth import service as auth
from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.followups import service as followups
from servicecycle.kit import clock
from servicecycle.tickets import service as tickets
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user

SEEDER = Actor.system("test")


async def _seed(server: LiveServer, email: str) -> tuple[int, int]:
    """A solved e-mail ticket with a check-in due an hour ago; (ticket id, follow-up id)."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            agent = await auth.find_user_by_email(session, email)
            assert agent is not None
            customer = await customers.create_customer(
                session, name="Dana Fox", emails=["dana@example.net"], actor=SEEDER
            )
            ticket, _ = await tickets.create_ticket(
                session,
                subject="Router keeps dropping",
                requester=customer,
                channel="email",
                body_text="The router drops every hour.",
                assignee_id=agent.id,
                actor=Actor("customer", str(customer.id)),
            )
            await tickets.set_status(session, ticket, "solved", actor=SEEDER)
            follow_up = await followups.create(
                session,
                ticket_id=ticket.id,
                owner_id=agent.id,
                kind="check_in",
                reason="Is the new router stable?",
                due_at=clock.now() - timedelta(hours=1),
                actor=SEEDER,
            )
            return ticket.id, follow_up.id
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_an_agent_sends_a_check_in_and_marks_the_follow_up_done(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "nora@example.com", "Nora Quinn", "agent")
    ticket_id, follow_up_id = await _seed(live_server, "nora@example.com")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "nora@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("nav >> text=Follow-ups")
    await page.wait_for_url(live_server.url + "/follow-ups")
    assert (await page.text_content("[data-overdue-count]") or "").strip() == "1 overdue"
    row = page.locator(f"tr[data-follow-up='{follow_up_id}']")
    assert "overdue" in (await row.text_content() or "")
    await page.screenshot(path=str(shot_path("followups-queue")), full_page=True)

    await row.locator("text=Check in").click()
    preview = await page.input_value("#check-in-body")
    assert preview.startswith("Hi Dana,") and f"#{ticket_id}" in preview and "Nora" in preview
    await page.click("text=Send check-in")
    await page.wait_for_selector("text=Check-in sent on the ticket.")

    await page.select_option("#done-outcome", "resolved")
    await page.fill("#done-note", "Stable all week")
    await page.click("text=Mark done")
    await page.wait_for_selector("text=the loop is closed")
    assert (await page.text_content("[data-outcome]") or "").strip() == "Resolved"

    await page.goto(f"{live_server.url}/tickets/{ticket_id}")
    assert "Is everything working" in (await page.text_content("main") or "")
    await page.goto(live_server.url + "/follow-ups")
    assert (await page.text_content("[data-overdue-count]") or "").strip() == "0 overdue"
    await page.screenshot(path=str(shot_path("followups-done")), full_page=True)
    assert errors == []
    await context.close()
