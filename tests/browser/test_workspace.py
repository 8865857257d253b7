"""An agent works a ticket in Chromium: inbox, take, reply, note, solve, customer history."""

from __future__ import annotations

import pytest

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.tickets import service as tickets
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user

SEEDER = Actor.system("test")


async def _seed(server: LiveServer) -> tuple[int, int]:
    """Three customers with a ticket each; returns (customer id, ticket id) of the newest."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            stories = [
                ("Oliver Grant", "oliver@example.co.uk", "Invoice shows the wrong address", "high"),
                ("Lucía Fernández", "lucia@example.es", "Can I change the size?", "normal"),
                ("Dana Fox", "dana@example.net", "My parcel has not arrived", "urgent"),
            ]
            for name, email, subject, priority in stories:
                customer = await customers.create_customer(
                    session, name=name, emails=[email], tier="premium", actor=SEEDER
                )
                ticket, _ = await tickets.create_ticket(
                    session,
                    subject=subject,
                    requester=customer,
                    channel="email",
                    body_text=f"Hello,\n\n{subject}. Order 5521, placed last week.",
                    priority=priority,
                    tags=["delivery"] if "parcel" in subject else [],
                    actor=Actor("customer", str(customer.id)),
                )
            return customer.id, ticket.id
    finally:
        await engine.dispose()


async def _colleague_tags(server: LiveServer, ticket_id: int) -> None:
    """Someone else changes the ticket while the page is open."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            ticket = await tickets.get_ticket(session, ticket_id)
            await tickets.update_ticket(
                session,
                ticket,
                expected_version=None,
                changes={"tags": ["delivery", "courier"]},
                actor=SEEDER,
            )
    finally:
        await engine.dispose()


@pytest.mark.browser
async def test_an_agent_takes_replies_notes_and_solves_a_ticket(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "nora@example.com", "Nora Quinn", "agent")
    customer_id, ticket_id = await _seed(live_server)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "nora@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("nav >> text=Inbox")
    await page.wait_for_url(live_server.url + "/inbox")
    assert "No tickets in this view" in await page.inner_text("main")

    # the unassigned queue, walked with the keyboard
    await page.click(".views >> text=Unassigned")
    await page.wait_for_url("**/inbox?view=unassigned")
    assert await page.locator("[data-view=unassigned] .count").inner_text() == "3"
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("k")
    selected = page.locator("tr.is-selected")
    assert await selected.count() == 1
    assert "My parcel has not arrived" in await selected.inner_text()
    await page.screenshot(path=shot_path("inbox"), full_page=True)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_server.url}/tickets/{ticket_id}")

    # take it
    await page.click("text=Take it (assign to me)")
    await page.wait_for_selector("text=is assigned to you")
    assert "assigned to Nora Quinn" in await page.inner_text(".ticket-head")

    # r: a public reply
    await page.keyboard.press("r")
    assert await page.evaluate("document.activeElement.id") == "body"
    assert await page.inner_text("[data-submit]") == "Send reply"
    await page.keyboard.type("Hi Dana, the courier has it; it arrives tomorrow.")
    await page.click("[data-submit]")
    await page.wait_for_selector("text=Reply sent.")

    # n: an internal note, typed into a yellow editor
    await page.keyboard.press("n")
    assert await page.is_checked("#kind-note")
    assert await page.inner_text("[data-submit]") == "Add note"
    background = await page.eval_on_selector("#body", "e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(255, 248, 219)"
    await page.keyboard.type("Courier ticket CX-118 opened.")
    await page.keyboard.press("Escape")
    await page.click("[data-submit]")
    await page.wait_for_selector("text=Note added.")
    note = page.locator("article.message.note")
    assert await note.count() == 1 and "Internal note" in (await note.text_content() or "")

    # solve it from the controls
    await page.select_option("#c-status", "solved")
    await page.click("text=Update ticket")
    await page.wait_for_selector(f"text=Ticket #{ticket_id} updated.")
    assert await page.inner_text(".ticket-head .status") == "solved"

    # a colleague changes it meanwhile: a notice, and the typed draft is kept
    await page.fill("#body", "A draft I am still writing")
    await _colleague_tags(live_server, ticket_id)
    await page.wait_for_selector(".live-notice", timeout=15_000)
    assert "This ticket was updated — reload" in await page.inner_text(".live-notice")
    assert await page.input_value("#body") == "A draft I am still writing"
    await page.fill("#body", "")
    await page.screenshot(path=shot_path("ticket"), full_page=True)

    # the customer's page tells the whole story, newest first
    await page.click(".customer-card >> text=Customer page and history")
    await page.wait_for_url(f"{live_server.url}/customers/{customer_id}")
    kinds = await page.eval_on_selector_all(
        ".history-item", "items => items.map(i => i.dataset.kind)"
    )
    # the e-mail channel's acknowledgement and the mailed reply are part of the story too
    assert kinds == [
        "ticket.updated",
        "status.changed",
        "message.added",
        "status.changed",
        "mail.queued",
        "message.added",
        "assigned",
        "mail.queued",
        "message.added",
        "ticket.created",
        "customer.created",
    ]
    story = " ".join((await page.text_content(".history") or "").split())
    steps = [  # newest first; a message's text follows its line
        "Nora Quinn changed the status open → solved",
        "Nora Quinn added an Internal note",
        "Courier ticket CX-118 opened.",
        "Nora Quinn changed the status new → open",
        "Nora Quinn replied",
        "the courier has it",
        "Nora Quinn took the ticket",
        "opened “My parcel has not arrived”",
    ]
    positions = [story.index(step) for step in steps]
    assert positions == sorted(positions)
    await page.screenshot(path=shot_path("customer"), full_page=True)

    assert errors == []
    await context.close()


async def _signed_in_page(browser: object, server: LiveServer, email: str) -> tuple[object, object]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(server.url + "/login")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(server.url + "/")
    return context, page


@pytest.mark.browser
async def test_two_agents_on_one_ticket_see_each_other_and_files_reach_the_thread(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "nora@example.com", "Nora Quinn", "agent")
    _create_user(live_server, "ana@example.com", "Ana Lopez", "agent")
    _, ticket_id = await _seed(live_server)
    url = f"{live_server.url}/tickets/{ticket_id}"
    nora_context, nora = await _signed_in_page(browser, live_server, "nora@example.com")
    ana_context, ana = await _signed_in_page(browser, live_server, "ana@example.com")
    errors: list[str] = []
    for page in (nora, ana):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]

    # each sees the other within one poll (every 10 s)
    await nora.goto(url)  # type: ignore[attr-defined]
    await ana.goto(url)  # type: ignore[attr-defined]
    await ana.wait_for_selector("text=Nora Quinn is also viewing", timeout=15_000)  # type: ignore[attr-defined]
    await nora.wait_for_selector("text=Ana Lopez is also viewing", timeout=15_000)  # type: ignore[attr-defined]

    # Ana starts a reply: Nora is told, above her own editor
    await ana.click("#body")  # type: ignore[attr-defined]
    await ana.keyboard.type("Hi Dana, I am checking with the courier.")  # type: ignore[attr-defined]
    notice = nora.locator(".presence-note.is-replying")  # type: ignore[attr-defined]
    await notice.wait_for(timeout=25_000)
    assert " ".join((await notice.inner_text()).split()) == "Ana Lopez is writing a reply"
    box = await nora.eval_on_selector(  # type: ignore[attr-defined]
        "#presence", "e => e.compareDocumentPosition(document.querySelector('#editor'))"
    )
    assert box & 4  # the editor follows the notice
    await nora.screenshot(path=shot_path("ticket-collision"), full_page=True)  # type: ignore[attr-defined]

    # Nora replies with a file; it is listed on her message
    await nora.fill("#body", "Here is the return label.")  # type: ignore[attr-defined]
    await nora.set_input_files(  # type: ignore[attr-defined]
        "#files",
        files=[
            {
                "name": "return-label.pdf",
                "mimeType": "application/pdf",
                "buffer": b"%PDF-1.4\n% a return label\n",
            }
        ],
    )
    await nora.click("[data-submit]")  # type: ignore[attr-defined]
    await nora.wait_for_selector("text=Reply sent.")  # type: ignore[attr-defined]
    last = nora.locator("article.message").last  # type: ignore[attr-defined]
    assert "Here is the return label." in await last.inner_text()
    link = last.locator(".attachments a")
    assert await link.inner_text() == "return-label.pdf"
    assert (await link.get_attribute("href") or "").startswith("/api/v1/attachments/")
    await nora.screenshot(path=shot_path("ticket-attachment"), full_page=True)  # type: ignore[attr-defined]

    # Ana's page learns the ticket moved on; her draft is still hers
    await ana.wait_for_selector(".live-notice", timeout=15_000)  # type: ignore[attr-defined]
    assert await ana.input_value("#body") == "Hi Dana, I am checking with the courier."  # type: ignore[attr-defined]

    assert errors == []
    await nora_context.close()  # type: ignore[attr-defined]
    await ana_context.close()  # type: ignore[attr-defined]


@pytest.mark.browser
async def test_an_agent_searches_from_anywhere_with_the_slash_key(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "nora@example.com", "Nora Quinn", "agent")
    _, parcel_id = await _seed(live_server)
    context, page = await _signed_in_page(browser, live_server, "nora@example.com")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # type: ignore[attr-defined]

    await page.keyboard.press("/")  # type: ignore[attr-defined]
    assert await page.evaluate("document.activeElement.id") == "topsearch-q"  # type: ignore[attr-defined]
    await page.keyboard.type("parcel -invoice")  # type: ignore[attr-defined]
    await page.keyboard.press("Enter")  # type: ignore[attr-defined]
    await page.wait_for_url("**/search?q=parcel+-invoice")  # type: ignore[attr-defined]
    rows = page.locator(".search-results tr[data-row]")  # type: ignore[attr-defined]
    assert await rows.count() == 1
    assert await page.inner_text(".search-results mark") == "parcel"  # type: ignore[attr-defined]

    await page.fill("#search-q", 'order 5521 status:new "wrong address"')  # type: ignore[attr-defined]
    async with page.expect_navigation():  # type: ignore[attr-defined]
        await page.keyboard.press("Enter")  # type: ignore[attr-defined]
    assert "Invoice shows the wrong address" in await page.inner_text(".search-results")  # type: ignore[attr-defined]
    await page.screenshot(path=shot_path("search"), full_page=True)  # type: ignore[attr-defined]

    await page.fill("#search-q", "parcel")  # type: ignore[attr-defined]
    async with page.expect_navigation():  # type: ignore[attr-defined]
        await page.keyboard.press("Enter")  # type: ignore[attr-defined]
    await page.wait_for_selector(".search-results mark")  # type: ignore[attr-defined]
    await page.locator("body").focus()  # type: ignore[attr-defined]
    await page.evaluate("document.activeElement.blur()")  # type: ignore[attr-defined]
    await page.keyboard.press("j")  # type: ignore[attr-defined]
    await page.keyboard.press("Enter")  # type: ignore[attr-defined]
    await page.wait_for_url(f"{live_server.url}/tickets/{parcel_id}")  # type: ignore[attr-defined]
    assert errors == []
    await context.close()  # type: ignore[attr-defined]
