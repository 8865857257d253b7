"""The workspace's search page, through the real app."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from tests.factories import sign_in

Make = Callable[..., Awaitable[Any]]
HTML = {"accept": "text/html"}


def _numbers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page)]


async def test_search_page_ranks_highlights_and_finds_customers(
    client: AsyncClient, make_user: Make, make_ticket: Make, make_customer: Make
) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    dana = await make_customer("Dana Quixote", email="dana@quixote.example")
    in_subject = await make_ticket("Refund for order 5521", requester=dana)
    in_body = await make_ticket("Question", body="I would like a refund please")
    await make_ticket("Unrelated", body="the printer is on fire")

    page = await client.get("/search", params={"q": "refund"}, headers=HTML)
    assert page.status_code == 200
    assert _numbers(page.text) == [in_subject.id, in_body.id]
    assert "<mark>Refund</mark> for order 5521" in page.text
    assert "<mark>refund</mark>" in page.text  # the snippet of the body hit
    assert "Dana Quixote" in page.text

    people = await client.get("/search", params={"q": "quixote"}, headers=HTML)
    assert 'href="/customers/' in people.text and "dana@quixote.example" in people.text


async def test_search_page_filters_and_explains_bad_queries(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    mine = await make_ticket("Printer jam", assignee_id=agent.id)
    await make_ticket("Printer smoke")
    page = await client.get("/search", params={"q": "printer assignee:me"}, headers=HTML)
    assert _numbers(page.text) == [mine.id]

    bad = await client.get("/search", params={"q": "colour:red shoes"}, headers=HTML)
    assert bad.status_code == 422
    assert "Unknown search field: colour" in bad.text and 'aria-invalid="true"' in bad.text

    empty = await client.get("/search", headers=HTML)
    assert empty.status_code == 200 and "How to search" in empty.text


async def test_search_page_escapes_what_customers_wrote(
    client: AsyncClient, make_user: Make, make_ticket: Make
) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    await make_ticket(
        '<script>alert("x")</script> invoice', body="<img src=x onerror=alert(1)> invoice"
    )
    page = await client.get("/search", params={"q": "invoice"}, headers=HTML)
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_search_page_is_for_agents_only(client: AsyncClient, make_user: Make) -> None:
    analyst = await make_user("analyst")
    await sign_in(client, analyst.email)
    assert (await client.get("/search", params={"q": "x"}, headers=HTML)).status_code == 403
    client.cookies.clear()
    signed_out = await client.get("/search", params={"q": "x"}, headers=HTML)
    assert signed_out.status_code in (303, 401)
