"""A mail with a picture in its text, opened by an agent in Chromium: the picture is really
loaded, from the desk's own attachment route, and a cid: the message has no file for asks
nothing of anyone."""

from __future__ import annotations

import httpx
import pytest

from servicecycle.auth import service as auth
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user
from tests.tickets.test_inline_images import png, related_mail


async def _api_token(server: LiveServer, email: str) -> str:
    engine = make_engine(server.database_url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            user = await auth.find_user_by_email(session, email)
            assert user is not None
            plain, _ = await auth.create_api_token(
                session,
                user,
                name="mail provider",
                scopes=["read", "write"],
                expires_at=None,
                actor=Actor.system("test"),
            )
            return plain
    finally:
        await engine.dispose()


async def _deliver(server: LiveServer, token: str, raw: bytes) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/v1/channels/email/inbound",
            headers={"Authorization": f"Bearer {token}", "content-type": "message/rfc822"},
            content=raw,
        )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.browser
async def test_an_agent_sees_the_picture_in_a_customers_mail(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "nora@example.com", "Nora Quinn", "agent")
    token = await _api_token(live_server, "nora@example.com")
    first = await _deliver(
        live_server,
        token,
        related_mail(
            "ann@example.com",
            "<shot-1@example.com>",
            '<p>Checkout fails with this:</p><img src="cid:Error.PNG@Mail.Example" alt="error">',
            {"error.png@mail.example": png(40, 30)},
        ),
    )
    ticket_id = first["ticket_id"]
    # her next mail names the first one's picture again: not this message's file, so inert
    reply = await _deliver(
        live_server,
        token,
        related_mail(
            "ann@example.com",
            "<shot-2@example.com>",
            '<p>Still the same:</p><img src="cid:error.png@mail.example" alt="same error">',
            {},
            subject="Re: Screenshot of the error",
            answers="<shot-1@example.com>",
        ),
    )
    assert reply["ticket_id"] == ticket_id

    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.resource_type == "image" else None)
    loaded: dict[str, int] = {}
    page.on("response", lambda r: loaded.update({r.url: r.status}))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "nora@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(live_server.url + "/")
    await page.goto(f"{live_server.url}/tickets/{ticket_id}")
    await page.wait_for_load_state("load")

    picture = page.locator(".message-body img[alt=error]")
    src = await picture.get_attribute("src")
    assert src is not None and src.startswith("/api/v1/attachments/")
    # the browser fetched and decoded it: a real 40 x 30 image, not a broken icon
    size = await picture.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size == [True, 40, 30]
    assert loaded[live_server.url + src] == 200
    listed = page.locator(f'.attachments a[href="{src}"]')
    assert await listed.count() == 1
    assert "shown in the message" in (await listed.locator("..").inner_text())

    inert = page.locator(".message-body img[alt='same error']")
    assert await inert.get_attribute("src") is None
    # the only image the page asked for is the picture (no cid: attempt, nothing elsewhere)
    assert [url for url in asked if "/static/" not in url] == [live_server.url + src]
    assert errors == []
    await page.screenshot(path=shot_path("inline-image"), full_page=True)
    await context.close()
