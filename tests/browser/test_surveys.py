"""Surveys in Chromium: an admin creates and enables a survey; a customer follows the
mail's one-click link, sees the thank-you page and adds the "why?"."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicecycle.config import Settings
from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.surveys import service, tasks
from servicecycle.surveys.models import SurveyResponse
from servicecycle.tickets import service as tickets
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user

TEST = Actor.system("test")


async def _solved_ticket_mailed(server: LiveServer, data_dir: Path) -> str:
    """A customer's ticket solved and its survey sent; returns the 2-point link's path."""
    engine = make_engine(server.database_url, pool_size=2)
    try:
        factory = make_sessionmaker(engine)
        async with unit_of_work(factory) as session:
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
            await tickets.set_status(session, ticket, "solved", actor=TEST)
        settings = Settings(data_dir=data_dir, base_url=server.url)
        async with unit_of_work(factory) as session:
            assert await service.send_due(session, tasks.mailer(settings)) == (1, 0)
            invitation_token = None
            from sqlalchemy import select

            from servicecycle.surveys.models import SurveyInvitation

            invitation = await session.scalar(select(SurveyInvitation))
            assert invitation is not None and invitation.sent_at is not None
            invitation_token = service.make_token(
                settings.keyring(), invitation, sent=invitation.sent_at
            )
        return f"/surveys/r/{invitation_token}?score=2"
    finally:
        await engine.dispose()


async def _responses(server: LiveServer) -> list[tuple[int, str]]:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        from sqlalchemy import select

        async with unit_of_work(make_sessionmaker(engine)) as session:
            rows = (await session.scalars(select(SurveyResponse))).all()
            return [(r.score, r.comment) for r in rows]
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_admin_enables_a_survey_and_a_customer_answers_it(
    live_server: LiveServer, browser: object, tmp_path: Path
) -> None:
    _create_user(live_server, "maria@example.com", "Maria Garcia", "admin")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(live_server.url + "/admin/surveys")
    assert "No survey yet" in await page.content()
    await page.fill("#new-name", "Satisfaction")
    await page.select_option("#new-kind", "csat")
    await page.check("input[name=enabled]")
    await page.uncheck("input[name=with_rule]")  # the standard rule waits 24 hours
    await page.click("text=Create survey")
    await page.wait_for_selector("text=this survey is never sent")
    await page.click("text=Add a rule")
    await page.fill("input[name=delay_hours]", "0")
    await page.click("text=Add rule")
    await page.wait_for_selector("text=Sending rule added")
    assert "once in 30 days" in await page.inner_text(".survey-rules")
    await page.screenshot(path=str(shot_path("surveys-admin")), full_page=True)
    await context.close()

    link = await _solved_ticket_mailed(live_server, tmp_path / "data")
    customer = await browser.new_context(viewport={"width": 480, "height": 800})  # type: ignore[attr-defined]
    page = await customer.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url + link)
    assert "We recorded your answer" in await page.inner_text("main")
    await page.fill("#survey-comment", "It took three replies.")
    await page.screenshot(path=str(shot_path("surveys-answer")), full_page=True)
    await page.click("text=Send")
    await page.wait_for_selector("text=Thank you for your feedback")
    assert await _responses(live_server) == [(2, "It took three replies.")]
    await page.goto(live_server.url + link.replace("score=2", "score=9"))
    assert "not on the scale" in await page.inner_text("main")
    await page.goto(live_server.url + link[:-12] + "xx?score=3")
    assert "cannot be used" in await page.inner_text("main")
    await page.screenshot(path=str(shot_path("surveys-refused")), full_page=True)
    assert await _responses(live_server) == [(2, "It took three replies.")]
    await customer.close()

    staff = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = await staff.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url + "/login")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(live_server.url + "/surveys?group=channel")
    table = await page.inner_text("table[data-kind=csat]")
    assert "email" in table and "0%" in table  # one answer of 2: nobody satisfied
    await page.screenshot(path=str(shot_path("surveys-scores")), full_page=True)
    assert errors == []
    await staff.close()
