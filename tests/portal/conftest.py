"""Helpers for portal tests: sign a customer in the way a browser does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.models import OutboundMail

Sessions = async_sessionmaker[AsyncSession]


def hidden(html: str, name: str = "csrf_token") -> str:
    return html.split(f'name="{name}" value="')[1].split('"')[0]


async def ask_link(client: AsyncClient, email: str, **headers: str) -> Response:
    page = await client.get("/portal")
    return await client.post(
        "/portal/link", data={"email": email, "csrf_token": hidden(page.text)}, headers=headers
    )


async def links_sent(sessions: Sessions, email: str) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboundMail.body_text)
            .where(OutboundMail.to_address == email, OutboundMail.kind == "sign_in_link")
            .order_by(OutboundMail.id)
        )
        return [re.search(r"/portal/login/(\S+)", body).group(1) for body in rows]  # type: ignore[union-attr]


async def use_link(client: AsyncClient, token: str) -> Response:
    page = await client.get(f"/portal/login/{token}")
    if page.status_code != 200:
        return page
    return await client.post(f"/portal/login/{token}", data={"csrf_token": hidden(page.text)})


@dataclass
class Signed:
    csrf: str


async def sign_in(client: AsyncClient, sessions: Sessions, email: str) -> Signed:
    """Ask for a link, take it from the outbox, use it; returns the session's CSRF token."""
    assert (await ask_link(client, email)).status_code == 200
    response = await use_link(client, (await links_sent(sessions, email))[-1])
    assert response.status_code == 303, response.text
    page = await client.get("/portal/requests")
    assert page.status_code == 200
    return Signed(csrf=hidden(page.text))
