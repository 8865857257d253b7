"""The widget's rating in Chromium: a visitor can clear the comment they gave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from servicecycle.db.engine import make_engine, make_sessionmaker
from servicecycle.surveys.models import SurveyResponse
from tests.browser.conftest import CHROMIUM, LiveServer
from tests.browser.conftest import browser as browser  # the fixtures
from tests.browser.conftest import live_server as live_server
from tests.browser.test_chat import _ask_csat, _errors
from tests.browser.test_chat import shop as shop
from tests.browser.test_sign_in import PASSWORD, _create_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


async def _comment(server: LiveServer) -> str:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            [response] = (await session.scalars(select(SurveyResponse))).all()
            return response.comment
    finally:
        await engine.dispose()


async def test_an_emptied_comment_box_clears_the_comment(
    live_server: LiveServer, shop: str, browser: object
) -> None:
    _create_user(live_server, "ana@example.com", "Ana Lima", "agent")
    await _ask_csat(live_server)
    agent_ctx = await browser.new_context()  # type: ignore[attr-defined]
    agent = await agent_ctx.new_page()
    await agent.goto(live_server.url + "/login")
    await agent.fill("#email", "ana@example.com")
    await agent.fill("#password", PASSWORD)
    await agent.click("button[type=submit]")
    await agent.goto(live_server.url + "/chat")
    await agent.wait_for_selector("[data-chat-desk][data-connected=true]")
    await agent.click("[data-set-availability=online]")
    await agent.wait_for_selector("[data-availability]:text('online')")

    visitor_ctx = await browser.new_context()  # type: ignore[attr-defined]
    visitor = await visitor_ctx.new_page()
    errors = _errors(visitor)
    await visitor.goto(shop)
    await visitor.click(".sc-launcher")
    await visitor.wait_for_selector(".sc-status:text('Ask us anything')")
    await visitor.fill(".sc-name", "Vera Visitor")
    await visitor.fill(".sc-first", "Hello?")
    await visitor.click(".sc-start")
    item = agent.locator(".chat-item", has_text="Vera Visitor")
    await item.click()
    await agent.click("[data-chat-take]")
    await visitor.wait_for_selector(".sc-status:text('Ana Lima is here.')")
    await agent.click("[data-chat-end]")

    await visitor.wait_for_selector(".sc-rating:not([hidden])")
    await visitor.fill(".sc-rating-comment", "Slow at first.")
    await visitor.click(".sc-score[data-score='3']")
    await visitor.wait_for_selector(".sc-rated:text('Thank you for your rating and your comment.')")
    assert await _comment(live_server) == "Slow at first."

    # second thoughts: the visitor empties the box and sends again
    await visitor.fill(".sc-rating-comment", "")
    await visitor.click(".sc-rate-send")
    await visitor.wait_for_selector(".sc-rated:text('Thank you for your rating.')")
    assert await _comment(live_server) == ""
    assert errors == []
    await visitor_ctx.close()
    await agent_ctx.close()
