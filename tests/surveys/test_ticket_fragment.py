"""GET /surveys/tickets/{id}: the ratings of one ticket, for the ticket page's side column."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.service import Actor
from servicecycle.surveys import service
from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}
ADMIN = Actor.system("test")


async def test_the_ticket_fragment_shows_its_ratings_only(
    client: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    make_user: Make,
    make_ticket: Make,
) -> None:
    async with sessions() as session, session.begin():
        await service.create_survey(session, name="CSAT", kind="csat", enabled=True, actor=ADMIN)
    rated = await make_ticket("Rated in chat", channel="chat")
    other = await make_ticket("Rated elsewhere")
    quiet = await make_ticket("Not rated")
    async with sessions() as session, session.begin():
        await service.rate_in_place(
            session, rated, kind="csat", score=2, comment="<b>Slow</b>", source="chat"
        )
        await service.rate_in_place(session, other, kind="csat", score=5, source="portal")

    assert (await client.get(f"/surveys/tickets/{rated.id}", headers=HTML)).status_code == 303
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    page = await client.get(f"/surveys/tickets/{rated.id}", headers=HTML)
    assert page.status_code == 200
    assert 'data-rating-kind="csat" data-rating-score="2"' in page.text
    assert "in chat" in page.text and "&lt;b&gt;Slow&lt;/b&gt;" in page.text
    assert 'data-rating-score="5"' not in page.text  # another ticket's rating
    empty = await client.get(f"/surveys/tickets/{quiet.id}", headers=HTML)
    assert empty.status_code == 200 and "Rating" not in empty.text
    assert (await client.get("/surveys/tickets/999999", headers=HTML)).status_code == 404
