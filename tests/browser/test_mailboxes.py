"""An admin connects an IMAP mailbox (a real dovecot) in Chromium, tests it, polls it, and the
mail in it becomes a ticket."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveServer, shot_path
from tests.browser.test_sign_in import PASSWORD, _create_user
from tests.channels.conftest import ImapServer, imap_server  # noqa: F401 (the fixture)
from tests.channels.test_imap import mail


@pytest.mark.browser
async def test_an_admin_connects_a_mailbox_and_its_mail_becomes_a_ticket(
    live_server: LiveServer,
    browser: object,
    imap_server: ImapServer,  # noqa: F811
) -> None:
    account = imap_server.account()
    account.append(mail("Boiler makes a noise", message_id="<boiler@example.com>"))
    _create_user(live_server, "maria@example.com", "Maria Garcia", "admin")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(live_server.url + "/login")
    await page.fill("#email", "maria@example.com")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.click("nav >> text=Channels")
    await page.wait_for_url(live_server.url + "/admin/channels")
    assert await page.is_visible("text=No mailbox yet")

    await page.fill("#n-name", "Support")
    await page.fill("#n-address", "support@desk.example")
    await page.fill("#n-host", account.host)
    await page.select_option("#n-security", "none")
    await page.fill("#n-port", str(account.port))
    await page.fill("#n-username", account.username)
    await page.fill("#n-password", account.password)
    await page.click("text=Save mailbox")
    await page.wait_for_selector("h1 >> text=Support")
    assert await page.input_value("#e-password") == ""  # never sent back

    await page.click("text=Test connection")
    await page.wait_for_selector("text=connected and opened INBOX (1 mail)")
    await page.click("text=Poll now")
    await page.wait_for_selector("text=polled: 1 ticket")
    await page.screenshot(path=str(shot_path("mailbox")), full_page=True)
    assert account.count() == 1

    await page.click(".crumbs >> text=Channels")
    await page.wait_for_selector("tr[data-mailbox] >> text=working")
    # no worker runs here, so no IDLE watcher: the row says the mailbox is polled
    assert "polled every 1 min" in await page.inner_text("tr[data-mailbox] [data-how]")
    await page.screenshot(path=str(shot_path("channels")), full_page=True)
    await page.goto(live_server.url + "/inbox?view=unassigned")
    await page.wait_for_selector("text=Boiler makes a noise")
    assert errors == []
    await context.close()
