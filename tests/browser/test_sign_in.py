"""Sign in through the real page in Chromium."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveServer, shot_path
from tests.cli.test_commands import run

PASSWORD = "a long enough password"


def _create_user(server: LiveServer, email: str, name: str, role: str) -> None:
    result = run(
        "user",
        "create",
        "--email",
        email,
        "--name",
        name,
        "--role",
        role,
        env={"DATABASE_URL": server.database_url, "SERVICECYCLE_NEW_PASSWORD": PASSWORD},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.browser
async def test_an_admin_signs_in_sees_the_start_page_and_signs_out(
    live_server: LiveServer, browser: object
) -> None:
    _create_user(live_server, "maria@example.com", "Maria Garcia", "admin")
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    # a refused sign-in is answered 401, which Chromium logs; anything else is a real error
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "status of 401" not in msg.text
            else None
        ),
    )

    await page.goto(live_server.url + "/activity")
    assert page.url.startswith(live_server.url + "/login?next=")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    assert await page.locator("[role=alert]").inner_text() == "Wrong e-mail or password."
    await page.screenshot(path=shot_path("login-failed"))

    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(live_server.url + "/activity")
    assert "user.logged_in" in await page.inner_text("main")
    await page.click("text=Home")
    assert "Welcome, Maria" in await page.inner_text("h1")
    await page.screenshot(path=shot_path("home"), full_page=True)

    await page.click("text=Sign out")
    await page.wait_for_url(live_server.url + "/login")
    await page.goto(live_server.url + "/")
    assert "/login" in page.url
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_an_agent_makes_an_api_token_and_uses_it(
    live_server: LiveServer, browser: object
) -> None:
    import httpx

    _create_user(live_server, "tom@example.com", "Tom Agent", "agent")
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(live_server.url + "/login")
    await page.fill("#email", "tom@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("text=API tokens")
    await page.fill("#token-name", "Zapier")
    await page.click("text=Create token")
    secret = await page.inner_text("#new-token")
    await page.screenshot(path=shot_path("api-token-created"), full_page=True)
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["email"] == "tom@example.com"
    assert "Users & teams" not in await page.inner_text("nav")
    await context.close()
