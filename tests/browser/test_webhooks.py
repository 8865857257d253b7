"""An admin subscribes a webhook in Chromium: the secret is shown once, a ping is queued."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user


@pytest.mark.browser
async def test_an_admin_creates_a_webhook_and_sees_its_secret_once(
    live_server: LiveServer, browser: object
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
    await page.goto(live_server.url + "/admin/webhooks")

    # a private target is refused, naming the field, with the form kept
    await page.fill("#n-name", "CRM sync")
    await page.fill("#n-url", "http://10.0.0.5/hooks")
    await page.fill("#n-kinds", "ticket.*\nsla.breached")
    await page.click("text=Create webhook")
    await page.wait_for_selector(".field-error >> text=private")
    assert await page.input_value("#n-name") == "CRM sync"

    await page.fill("#n-url", "https://crm.example.com/hooks/servicecycle")
    await page.click("text=Create webhook")
    secret = await page.inner_text("[data-secret]")
    assert secret.startswith("whsec_")
    await page.screenshot(path=str(shot_path("webhooks-created")), full_page=True)

    await page.click("[data-ping]")
    await page.wait_for_selector("text=Ping queued")
    assert "webhook.ping" in await page.inner_text(".deliveries")
    assert secret not in await page.content()
    await page.screenshot(path=str(shot_path("webhooks-log")), full_page=True)

    await page.goto(live_server.url + "/admin/webhooks")
    assert "CRM sync" in await page.inner_text(".webhooks")
    assert secret not in await page.content()
    await page.screenshot(path=str(shot_path("webhooks-list")), full_page=True)
    assert errors == []
    await context.close()
