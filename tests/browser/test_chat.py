"""Live chat end to end in Chromium: a visitor on another site, an agent on /chat."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.surveys import service as surveys
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user
from tests.cli.test_serve_lifecycle import free_port

SHOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Shop</title></head>
<body><h1>Example Shop</h1><p>Spring collection, free returns.</p>
<script src="{desk}/chat/widget.js" data-desk="{desk}" async></script>
</body></html>
"""


def _shop(desk: str) -> Iterator[str]:
    """A customer's site on another origin, embedding the widget with the one tag."""
    page = SHOP.format(desk=desk).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shop(live_server: LiveServer) -> Iterator[str]:
    yield from _shop(live_server.url)


def _errors(page: object) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]
    return errors


async def _ask_csat(server: LiveServer) -> None:
    """The desk asks for CSAT: the widget offers a rating when a chat ends."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            await surveys.create_survey(
                session, name="CSAT", kind="csat", enabled=True, actor=Actor.system("test")
            )
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_a_visitor_chats_with_an_agent_and_the_transcript_is_on_the_ticket(
    live_server: LiveServer, shop: str, browser: object
) -> None:
    _create_user(live_server, "ana@example.com", "Ana Lima", "agent")
    await _ask_csat(live_server)

    # the agent signs in, opens Live chat and goes online
    agent_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    agent = await agent_ctx.new_page()
    agent_errors = _errors(agent)
    await agent.goto(live_server.url + "/login")
    await agent.fill("#email", "ana@example.com")
    await agent.fill("#password", PASSWORD)
    await agent.click("button[type=submit]")
    await agent.click("nav >> text=Live chat")
    await agent.wait_for_url(live_server.url + "/chat")
    await agent.wait_for_selector("[data-chat-desk][data-connected=true]")
    await agent.click("[data-set-availability=online]")
    await agent.wait_for_selector("[data-availability]:text('online')")

    # a visitor on the shop's site opens the widget and writes
    visitor_ctx = await browser.new_context(viewport={"width": 1100, "height": 760})  # type: ignore[attr-defined]
    visitor = await visitor_ctx.new_page()
    visitor_errors = _errors(visitor)
    await visitor.goto(shop)
    await visitor.click(".sc-launcher")
    await visitor.wait_for_selector(".sc-status:text('Ask us anything')")
    await visitor.fill(".sc-name", "Vera Visitor")
    await visitor.fill(".sc-first", "Hi! Can I still change the size of order 5521?")
    await visitor.click(".sc-start")
    await visitor.wait_for_selector(".sc-line.sc-from-visitor:has-text('order 5521')")
    await visitor.wait_for_selector(".sc-status:text('Waiting for an agent')")

    # the agent's list shows it without a reload; the agent takes it and answers
    item = agent.locator(".chat-item", has_text="Vera Visitor")
    await item.wait_for()
    assert "waiting" in await item.inner_text()
    assert (await agent.title()).startswith("(1) Live chat")
    await item.click()
    await agent.wait_for_selector(".chat-line.from-visitor:has-text('order 5521')")
    await agent.click("[data-chat-take]")
    await agent.wait_for_selector("[data-chat-compose]:not([hidden])")
    await agent.fill("#chat-input", "Hi Vera, yes: which size would you like?")
    await agent.keyboard.press("Enter")

    # the visitor sees the agent join and the answer, and replies
    await visitor.wait_for_selector(".sc-status:text('Ana Lima is here.')")
    answer = visitor.locator(".sc-line.sc-from-agent")
    await answer.wait_for()
    assert "which size would you like?" in await answer.inner_text()
    await visitor.fill(".sc-input", "Medium, please.")
    await visitor.press(".sc-input", "Enter")
    await agent.wait_for_selector(".chat-line.from-visitor:has-text('Medium, please.')")
    await agent.fill("#chat-input", "Done: you will get the medium one.")
    await agent.keyboard.press("Enter")
    await visitor.wait_for_selector(".sc-line.sc-from-agent:has-text('medium one')")
    await visitor.screenshot(path=shot_path("chat-widget"))
    await agent.screenshot(path=shot_path("chat-agent"))

    # a reload resumes the same chat
    await visitor.reload()
    await visitor.wait_for_selector(".sc-line.sc-from-agent:has-text('medium one')")
    assert await visitor.locator(".sc-line").count() == 4

    # the whole conversation is on the ticket
    ticket_link = agent.locator("[data-chat-ticket]")
    ticket_url = await ticket_link.get_attribute("href")
    await agent.goto(live_server.url + str(ticket_url))
    thread = await agent.inner_text(".thread")
    for said in ("order 5521", "which size would you like?", "Medium, please.", "medium one"):
        assert said in thread

    customer_url = await agent.get_attribute(".customer-name a", "href")

    # the agent ends the chat; the agent's list empties
    await agent.goto(live_server.url + "/chat")
    await agent.locator(".chat-item", has_text="Vera Visitor").click()
    await agent.click("[data-chat-end]")
    await agent.wait_for_selector("[data-chat-empty]:not([hidden])")

    # the visitor is asked "How did we do?" and rates, with a comment
    await visitor.wait_for_selector(".sc-status:text('Chat ended.')")
    await visitor.wait_for_selector(".sc-rating:not([hidden])")
    assert "How did we do?" in await visitor.inner_text(".sc-rating")
    assert await visitor.locator(".sc-score").count() == 5
    await visitor.click(".sc-score[data-score='2']")
    await visitor.wait_for_selector(".sc-rated:text('Thank you for your rating.')")
    # second thoughts: another score and a comment change the same answer
    await visitor.fill(".sc-rating-comment", "Quick and friendly.")
    await visitor.click(".sc-score[data-score='4']")
    await visitor.wait_for_selector(".sc-rated:text('Thank you for your rating and your comment.')")
    assert await visitor.get_attribute(".sc-score[data-score='4']", "aria-pressed") == "true"
    assert await visitor.get_attribute(".sc-score[data-score='2']", "aria-pressed") == "false"
    await visitor.screenshot(path=shot_path("chat-rating"))

    # the rating shows on the customer's page, once
    await agent.goto(live_server.url + str(customer_url))
    feedback = agent.locator(".survey-customer")
    await feedback.wait_for()
    text = await feedback.inner_text()
    assert "CSAT 4" in text and "Quick and friendly." in text and "CSAT 100%" in text
    assert await agent.locator(".survey-customer li").count() == 1

    assert visitor_errors == [] and agent_errors == []
    await visitor_ctx.close()
    await agent_ctx.close()


@pytest.mark.browser
async def test_with_nobody_online_the_widget_asks_for_an_email(
    live_server: LiveServer, shop: str, browser: object
) -> None:
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    errors = _errors(page)
    await page.goto(shop)
    await page.click(".sc-launcher")
    await page.wait_for_selector(".sc-status:text('Nobody is online right now')")
    assert await page.inner_text("label[for=sc-email]") == "E-mail (needed: we reply by mail)"
    await page.fill(".sc-name", "Olga")
    await page.fill(".sc-email", "olga@example.no")
    await page.fill(".sc-first", "Do you ship to Norway?")
    await page.click(".sc-start")
    await page.wait_for_selector(".sc-status:text('we will reply by e-mail')")
    await page.wait_for_selector(".sc-line.sc-from-visitor:has-text('Norway')")
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_the_demo_page_embeds_the_widget_under_the_desks_own_csp(
    live_server: LiveServer, browser: object
) -> None:
    """The desk's strict Content-Security-Policy lets its own widget, style and socket in."""
    _create_user(live_server, "ada@example.com", "Ada Admin", "admin")
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    errors = _errors(page)
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    await page.goto(live_server.url + "/login")
    await page.fill("#email", "ada@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.goto(live_server.url + "/admin/chat")
    snippet = await page.inner_text("[data-snippet]")
    assert snippet == (
        f'<script src="{live_server.url}/chat/widget.js" data-desk="{live_server.url}" async>'
        "</script>"
    )
    await page.click("text=Open the demo page")
    await page.wait_for_url(live_server.url + "/chat/demo")
    await page.click(".sc-launcher")
    await page.wait_for_selector(".sc-status:text('Nobody is online right now')")
    # the widget's stylesheet applied inside its shadow root (not blocked by style-src)
    radius = await page.eval_on_selector(".sc-panel", "e => getComputedStyle(e).borderRadius")
    assert radius == "12px"
    assert errors == []
    await context.close()
