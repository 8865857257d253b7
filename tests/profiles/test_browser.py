"""The profile fragment in Chromium, under the real Content-Security-Policy: its stylesheet
loads, the score bar is drawn, and nothing is blocked."""

from __future__ import annotations

from datetime import timedelta

import pytest

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.tickets import service as tickets
from tests.browser.conftest import CHROMIUM, LiveServer, shot_path
from tests.browser.conftest import browser as browser  # the fixtures
from tests.browser.conftest import live_server as live_server
from tests.browser.test_sign_in import PASSWORD, _create_user

TEST = Actor.system("test")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


async def _customer_with_a_waiting_ticket(server: LiveServer) -> int:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            customer = await customers.create_customer(
                session, name="Dana Fox", emails=["dana@example.com"], actor=TEST
            )
            ticket, _ = await tickets.create_ticket(
                session,
                subject="Invoice wrong",
                requester=customer,
                channel="email",
                body_text="Twice charged.",
                actor=TEST,
            )
            ticket.created_at = clock.now() - timedelta(hours=30)  # 30 h without a reply
            return int(customer.id)
    finally:
        await engine.dispose()


async def test_the_profile_card_renders_with_its_stylesheet(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "maria@example.com", "Maria Garcia", "agent")
    customer_id = await _customer_with_a_waiting_ticket(live_server)
    context = await browser.new_context(viewport={"width": 420, "height": 700})  # type: ignore[attr-defined]
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    await page.goto(live_server.url + "/login")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(live_server.url + "/**")
    # no answer 20, one open 15, no reopen 20, 30 h waiting 5: 60, no answer: unknown
    await page.goto(live_server.url + f"/profiles/customers/{customer_id}?compact=1")
    card = page.locator("section.profile")
    assert await card.get_attribute("data-score") == "60"
    assert await card.get_attribute("data-segment") == "unknown"
    meter = page.locator("meter.profile-bar")
    assert await meter.get_attribute("value") == "60"
    # the stylesheet applied: the bar is a full-width block
    assert await meter.evaluate("m => getComputedStyle(m).display") == "block"
    assert (await meter.bounding_box() or {"width": 0})["width"] > 300
    await page.screenshot(path=str(shot_path("profiles-compact")), full_page=True)
    await page.goto(live_server.url + f"/profiles/customers/{customer_id}")
    assert "First contact" in await page.inner_text("section.profile")
    await page.screenshot(path=str(shot_path("profiles-full")), full_page=True)
    # a bare fragment has no <link rel=icon>: the browser's favicon.ico guess is not ours
    assert [u for u in missing if not u.endswith("/favicon.ico")] == []
    assert [p for p in problems if "404" not in p] == []
    await context.close()
