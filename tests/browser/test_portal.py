"""A customer in Chromium: a sign-in link by real mail, a new request, the agent's answer.

The server runs with its job worker and its SMTP settings pointed at an aiosmtpd server in
this test, so the link arrives the way it would in production.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from servicecycle.auth import service as auth
from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.surveys import service as surveys
from servicecycle.tickets import custom_fields
from servicecycle.tickets import service as tickets
from tests.browser.conftest import shot_path
from tests.channels.test_email_out import Inbox
from tests.cli.test_serve_lifecycle import free_port, wait_healthy

SEEDER = Actor.system("test")
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@dataclass
class PortalServer:
    url: str
    database_url: str
    inbox: Inbox


@pytest.fixture
def portal_server(fresh_database: Callable[..., str], tmp_path: Path) -> Iterator[PortalServer]:
    """`servicecycle serve` with its worker, mailing through a real SMTP server in the test."""
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    database_url = fresh_database()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SERVICECYCLE_", "DATABASE_URL"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "SERVICECYCLE_DATA_DIR": str(tmp_path / "data"),
            "SERVICECYCLE_SMTP_HOST": "127.0.0.1",
            "SERVICECYCLE_SMTP_PORT": str(smtp_port),
            "SERVICECYCLE_MAIL_FROM": "help@desk.example",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "servicecycle", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(port, process)
        yield PortalServer(f"http://127.0.0.1:{port}", database_url, inbox)
    finally:
        process.terminate()
        process.wait(30)
        controller.stop()


async def _seed(server: PortalServer) -> str:
    """A customer, a public field, and an agent's API token (returned)."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            await customers.create_customer(
                session, name="Lucía Fernández", emails=["lucia@example.es"], actor=SEEDER
            )
            await custom_fields.create_field(
                session,
                key="order_number",
                label="Order number",
                kind="text",
                options=[],
                required=False,
                public=True,
                actor=SEEDER,
            )
            agent = await auth.create_user(
                session,
                email="tom@desk.example",
                name="Tom Agent",
                role="agent",
                password=None,
                actor=SEEDER,
            )
            for kind in ("csat", "nps"):  # the desk asks both: the portal shows both
                await surveys.create_survey(
                    session, name=kind.upper(), kind=kind, enabled=True, actor=SEEDER
                )
            token, _ = await auth.create_api_token(
                session, agent, name="test", scopes=["read", "write"], expires_at=None, actor=SEEDER
            )
            return token
    finally:
        await engine.dispose()


async def _mail_to(inbox: Inbox, address: str, subject_part: str) -> EmailMessage:
    """The mail, once the server's job has sent it (it is deferred right after the request)."""
    for _ in range(300):
        for mail in inbox.mails:
            if mail["To"] == address and subject_part in str(mail["Subject"]):
                return mail
        await asyncio.sleep(0.2)
    raise AssertionError(f"no mail to {address} about {subject_part!r}: {inbox.mails}")


async def _solve(server: PortalServer, ticket_id: int) -> None:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            ticket = await tickets.get_ticket(session, ticket_id)
            await tickets.set_status(session, ticket, "solved", actor=SEEDER)
    finally:
        await engine.dispose()


async def _answers(server: PortalServer) -> list[tuple[str, int, str, str]]:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            found = await surveys.list_responses(session, surveys.ResponseFilter())
            return sorted((r.kind, r.score, r.comment, r.source) for r in found)
    finally:
        await engine.dispose()


def _shot(name: str) -> str:
    return str(shot_path(name))


def _keep_for_docs(name: str) -> None:
    """SERVICECYCLE_DOC_SHOTS=1 copies the screenshot into docs/images/ for docs/portal.md."""
    if os.environ.get("SERVICECYCLE_DOC_SHOTS"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot_path(name), DOC_IMAGES / f"{name}.png")


@pytest.mark.browser
async def test_a_customer_signs_in_by_mail_asks_and_reads_the_agents_answer(
    portal_server: PortalServer, browser: object
) -> None:
    agent_token = await _seed(portal_server)
    context = await browser.new_context(viewport={"width": 1100, "height": 760})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    await page.goto(portal_server.url + "/portal/requests")
    assert "/portal?next=" in page.url
    await page.screenshot(path=_shot("portal-sign-in"))
    _keep_for_docs("portal-sign-in")
    await page.fill("#link-email", "lucia@example.es")
    await page.click("text=E-mail me a sign-in link")
    assert "Check your e-mail" in await page.inner_text("h1")

    mail = await _mail_to(portal_server.inbox, "lucia@example.es", "sign-in link")
    body = mail.get_content()  # type: ignore[attr-defined]
    link = re.search(r"http://\S+/portal/login/\S+", body)
    assert link is not None, body
    await page.goto(link.group(0))
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url(portal_server.url + "/portal/requests")
    assert "Lucía Fernández" in await page.inner_text("header")

    await page.click("text=New request")
    await page.fill("#subject", "The jacket is the wrong size")
    await page.fill("#description", "I ordered an L and received an M. Can I swap it?")
    await page.fill("#cf-order_number", "A-5521")
    await page.click("button:has-text('Send request')")
    await page.wait_for_url(re.compile(r".*/portal/requests/\d+$"))
    ticket_id = int(page.url.rsplit("/", 1)[1])
    assert "I ordered an L" in await page.inner_text(".conversation")

    async with httpx.AsyncClient(
        base_url=portal_server.url, headers={"Authorization": f"Bearer {agent_token}"}
    ) as api:
        for kind, text in (
            ("note", "Stock check: L is available in the Leeds warehouse."),
            ("reply", "Of course! A courier collects the M tomorrow and brings an L."),
        ):
            sent = await api.post(
                f"/api/v1/tickets/{ticket_id}/messages", json={"kind": kind, "body": text}
            )
            assert sent.status_code == 201, sent.text
        ticket = (await api.get(f"/api/v1/tickets/{ticket_id}")).json()
    assert ticket["custom"] == {"order_number": "A-5521"} and ticket["channel"] == "portal"

    await page.reload()
    conversation = await page.inner_text(".conversation")
    assert "A courier collects the M tomorrow" in conversation
    assert "Support team" in conversation and "Leeds warehouse" not in conversation
    await page.screenshot(path=_shot("portal-request"), full_page=True)
    _keep_for_docs("portal-request")

    # not solved yet: nothing to rate
    assert await page.locator("#rating").count() == 0
    await _solve(portal_server, ticket_id)
    await page.reload()
    rating = page.locator("#rating")
    await rating.wait_for()
    assert "How did we do?" in await rating.inner_text()
    csat = page.locator("form[data-rating-kind=csat]")
    nps = page.locator("form[data-rating-kind=nps]")
    assert await csat.locator("input[name=score]").count() == 5
    assert await nps.locator("input[name=score]").count() == 11
    # sent without a score: a friendly error, the comment kept
    await nps.locator("textarea").fill("The courier was late.")
    await nps.locator("button[type=submit]").click()
    assert "Please choose a score" in await page.inner_text("[role=alert]")
    nps = page.locator("form[data-rating-kind=nps]")
    assert await nps.locator("textarea").input_value() == "The courier was late."
    assert [e for e in errors if "422" in e] == [  # the refused form's status, logged
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    errors.clear()
    await nps.locator("input[name=score][value='6']").check()
    await nps.locator("button[type=submit]").click()
    await page.wait_for_url(re.compile(rf".*/portal/requests/{ticket_id}#rating$"))
    await page.locator("form[data-rating-kind=csat] input[name=score][value='4']").check()
    await page.locator("form[data-rating-kind=csat] button[type=submit]").click()
    await page.wait_for_selector("form[data-rating-kind=csat] [data-rated-score='4']")
    assert await page.locator("form[data-rating-kind=nps] [data-rated-score='6']").count() == 1
    await page.locator("#rating").screenshot(path=_shot("portal-rating"))
    _keep_for_docs("portal-rating")
    assert await _answers(portal_server) == [
        ("csat", 4, "", "portal"),
        ("nps", 6, "The courier was late.", "portal"),
    ]

    await page.click("nav >> text=My requests")
    assert "The jacket is the wrong size" in await page.inner_text(".request-list")
    await page.screenshot(path=_shot("portal-requests"))
    _keep_for_docs("portal-requests")

    await page.goto(portal_server.url + "/support")
    await page.screenshot(path=_shot("portal-support-form"), full_page=True)
    _keep_for_docs("portal-support-form")
    assert errors == []
    await context.close()
