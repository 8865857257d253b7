"""The webhooks admin pages through the real app: create (secret once), edit, ping, log."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.webhooks import service
from tests.factories import sign_in
from tests.webhooks.conftest import Receiver, WebhookSettings

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}


async def test_admin_creates_pings_and_redelivers_a_webhook(
    client: AsyncClient,
    make_user: Make,
    receiver: Receiver,
    sessions: async_sessionmaker[AsyncSession],
    settings: WebhookSettings,
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    empty = await client.get("/admin/webhooks", headers=HTML)
    assert empty.status_code == 200 and "No webhook yet" in empty.text

    refused = await client.post(
        "/admin/webhooks",
        headers=HTML,
        data={"csrf_token": csrf, "name": "CRM", "url": receiver.url, "kinds": "tickets.*"},
    )
    assert refused.status_code == 422 and "no event kind starts with tickets." in refused.text

    made = await client.post(
        "/admin/webhooks",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "name": "CRM",
            "url": receiver.url,
            "kinds": "ticket.created\nsla.*",
            "description": "Mirror",
        },
    )
    assert made.status_code == 200, made.text
    secret = re.search(r"data-secret>(whsec_[^<]+)<", made.text)
    assert secret is not None
    sub_id = int(re.search(r'action="/admin/webhooks/(\d+)/ping"', made.text).group(1))  # type: ignore[union-attr]

    page = await client.get(f"/admin/webhooks/{sub_id}", headers=HTML)
    assert page.status_code == 200 and secret.group(1) not in page.text
    listing = await client.get("/admin/webhooks", headers=HTML)
    assert "CRM" in listing.text and secret.group(1) not in listing.text

    edited = await client.post(
        f"/admin/webhooks/{sub_id}",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "name": "CRM",
            "url": receiver.url,
            "kinds": "ticket.*",
            "enabled": "on",
        },
    )
    assert edited.status_code == 303

    pinged = await client.post(
        f"/admin/webhooks/{sub_id}/ping", headers=HTML, data={"csrf_token": csrf}
    )
    assert pinged.status_code == 303
    receiver.answers = [400]
    async with sessions() as session, session.begin():
        assert await service.deliver_due(session, service.sending_for(settings)) == (0, 1)
    log = await client.get(f"/admin/webhooks/{sub_id}", headers=HTML)
    assert "webhook.ping" in log.text and 'data-status="failed"' in log.text
    row_id = int(re.search(r'data-delivery="(\d+)"', log.text).group(1))  # type: ignore[union-attr]
    again = await client.post(
        f"/admin/webhooks/deliveries/{row_id}/redeliver", headers=HTML, data={"csrf_token": csrf}
    )
    assert again.status_code == 303
    async with sessions() as session, session.begin():
        assert await service.deliver_due(session, service.sending_for(settings)) == (1, 0)

    rotated = await client.post(
        f"/admin/webhooks/{sub_id}/rotate", headers=HTML, data={"csrf_token": csrf}
    )
    new_secret = re.search(r"data-secret>(whsec_[^<]+)<", rotated.text)
    assert new_secret is not None and new_secret.group(1) != secret.group(1)

    off = await client.post(
        f"/admin/webhooks/{sub_id}/enabled",
        headers=HTML,
        data={"csrf_token": csrf, "enabled": "false"},
    )
    assert off.status_code == 303
    assert "disabled" in (await client.get(f"/admin/webhooks/{sub_id}", headers=HTML)).text
    gone = await client.post(
        f"/admin/webhooks/{sub_id}/delete", headers=HTML, data={"csrf_token": csrf}
    )
    assert gone.status_code == 303
    assert (await client.get(f"/admin/webhooks/{sub_id}", headers=HTML)).status_code == 404


async def test_agents_may_not_open_the_webhooks_pages(client: AsyncClient, make_user: Make) -> None:
    agent = await make_user("agent")
    csrf = await sign_in(client, agent.email)
    assert (await client.get("/admin/webhooks", headers=HTML)).status_code == 403
    posted = await client.post(
        "/admin/webhooks", headers=HTML, data={"csrf_token": csrf, "name": "x", "url": "x"}
    )
    assert posted.status_code == 403
