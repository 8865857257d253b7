"""GET /profiles/customers/{id}: the fragment for the customer page and the ticket panel."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from httpx import AsyncClient

from servicecycle.web import templating
from tests.factories import sign_in
from tests.profiles.conftest import Story

HTML = {"accept": "text/html"}


async def test_the_full_fragment_shows_score_parts_and_history(
    client: AsyncClient, make_user: Any, story: Callable[[], Awaitable[Story]]
) -> None:
    found = await story()
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    page = await client.get(f"/profiles/customers/{found.customer.id}", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert 'data-segment="promoter"' in text and 'data-score="77"' in text
    assert '<span class="pill ok profile-segment">Promoter</span>' in text
    assert 'value="77"' in text and "<meter" in text
    for name, points in (("Feedback", "40/40"), ("Open tickets", "15/20"), ("Waiting", "12/20")):
        assert re.search(rf"{name}</span>.*?{points}", text, re.S)
    assert "Median wait for a first reply" in text  # the explanation, in the full view
    assert '2 <span class="muted">(1 open, 1 solved)</span>' in text
    assert "1 open, 1 done" in text and "02 Nov 2026" in text
    # the answers themselves are on the surveys' Feedback card only: one list, not two
    assert "1 answered" in text and "(see Feedback)" in text
    assert f'href="/tickets/{found.first.id}"' not in text and "Latest answers" not in text
    assert 'href="/static/profiles.css"' in text and "style=" not in text


async def test_the_compact_fragment_for_the_ticket_panel(
    client: AsyncClient, make_user: Any, story: Callable[[], Awaitable[Story]]
) -> None:
    found = await story()
    analyst = await make_user("analyst")
    await sign_in(client, analyst.email)
    page = await client.get(f"/profiles/customers/{found.customer.id}?compact=1", headers=HTML)
    assert page.status_code == 200
    assert "profile-compact" in page.text and 'value="77"' in page.text
    assert "Reopens" in page.text and "Median wait" not in page.text
    assert "First contact" not in page.text and "2 tickets, 1 survey answer" in page.text


async def test_nothing_yet_and_unknown_customers(
    client: AsyncClient, make_user: Any, make_customer: Any
) -> None:
    customer = await make_customer("Ben")
    anonymous = await client.get(f"/profiles/customers/{customer.id}", headers=HTML)
    assert anonymous.status_code in (303, 401)
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    for query in ("", "?compact=1"):
        page = await client.get(f"/profiles/customers/{customer.id}{query}", headers=HTML)
        assert page.status_code == 200
        assert "No data yet" in page.text and "<meter" not in page.text
    missing = await client.get("/profiles/customers/999999", headers=HTML)
    assert missing.status_code == 404


async def test_the_customer_page_has_one_feedback_card(
    client: AsyncClient, make_user: Any, story: Callable[[], Awaitable[Story]]
) -> None:
    """The customer page loads the profile and the surveys' Feedback card; only the latter
    lists the answers."""
    found = await story()
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    page = await client.get(f"/customers/{found.customer.id}", headers=HTML)
    assert page.status_code == 200
    fragments = re.findall(r'hx-get="([^"]+)"', page.text)
    assert f"/surveys/customers/{found.customer.id}" in fragments
    assert f"/profiles/customers/{found.customer.id}" in fragments
    listed = 0
    for url in fragments:
        if url.startswith(("/surveys/customers/", "/profiles/customers/")):
            part = await client.get(url, headers=HTML)
            listed += part.text.count(f'href="/tickets/{found.first.id}"')
    assert listed == 1  # the CSAT answer's ticket, once, on the Feedback card


def test_the_stylesheet_is_an_asset_the_build_copies() -> None:
    assets = templating.WEB_DIR / "assets"
    assert (assets / "profiles.css").is_file()
    build = Path(templating.WEB_DIR.parents[2] / "scripts" / "build-assets.mjs").read_text()
    assert 'readdirSync(join(web, "assets"))' in build  # every file in assets/ is copied
