from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor
from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets import search, service
from servicecycle.tickets.query_syntax import parse
from tests.factories import Token

Make = Callable[..., Awaitable[Any]]


def test_query_syntax_splits_fields_from_text() -> None:
    q = parse('status:open,pending assignee:me tag:refund "lost parcel" courier -damaged')
    assert q.filters == {"status": ["open", "pending"], "assignee": ["me"], "tag": ["refund"]}
    assert q.text == '"lost parcel" courier -damaged'
    assert parse('team:"Second line" help').filters == {"team": ["Second line"]}
    assert parse("colour:red shoes").unknown == ["colour"]
    assert parse("http://example.com/x").filters == {}


async def test_subject_hits_rank_above_body_hits_and_are_highlighted(
    db: AsyncSession, make_ticket: Make
) -> None:
    in_body = await make_ticket("Question about my account", body="The invoice total is wrong")
    in_subject = await make_ticket("Invoice total wrong", body="Please check")
    found = await search.search(db, "invoice", me=1)
    ids = [t.id for t in found.tickets]
    assert ids.index(in_subject.id) < ids.index(in_body.id)
    top = found.tickets[0]
    assert top.subject_html == "<mark>Invoice</mark> total wrong"
    body_hit = next(t for t in found.tickets if t.id == in_body.id)
    assert "<mark>invoice</mark>" in body_hit.snippet_html


async def test_stemming_phrases_and_exclusions(db: AsyncSession, make_ticket: Make) -> None:
    refunds = await make_ticket("Refunds pending", body="two refunds for the lost parcel")
    other = await make_ticket("Parcel lost in transit", body="the parcel was lost, damaged box")
    found = {t.id for t in (await search.search(db, "refund", me=1)).tickets}
    assert refunds.id in found and other.id not in found
    phrase = {t.id for t in (await search.search(db, '"lost parcel"', me=1)).tickets}
    assert refunds.id in phrase and other.id not in phrase
    excluded = {t.id for t in (await search.search(db, "parcel -damaged", me=1)).tickets}
    assert refunds.id in excluded and other.id not in excluded


async def test_field_filters_narrow_results(
    db: AsyncSession, make_ticket: Make, make_user: Make
) -> None:
    agent = await make_user("agent")
    mine = await make_ticket("Printer jam", tags=["hardware"], assignee_id=agent.id)
    theirs = await make_ticket("Printer smoke", priority="urgent")
    hits = {t.id for t in (await search.search(db, "printer assignee:me", me=agent.id)).tickets}
    assert hits == {mine.id}
    urgent = {
        t.id for t in (await search.search(db, "priority:urgent printer", me=agent.id)).tickets
    }
    assert urgent == {theirs.id}
    tagged = {t.id for t in (await search.search(db, "tag:hardware", me=agent.id)).tickets}
    assert tagged == {mine.id}
    with pytest.raises(ValidationFailed):
        await search.search(db, "status:frozen printer", me=1)
    with pytest.raises(ValidationFailed):
        await search.search(db, "colour:red", me=1)


async def test_internal_notes_are_searchable_for_agents(
    db: AsyncSession, make_ticket: Make
) -> None:
    ticket = await service.get_ticket(db, (await make_ticket("Late", body="where is it")).id)
    await service.add_message(
        db,
        ticket,
        public=False,
        author_type="agent",
        body_text="escalated to Zorgcourier",
        actor=Actor.user(1),
    )
    assert [t.id for t in (await search.search(db, "zorgcourier", me=1)).tickets] == [ticket.id]


async def test_customers_found_by_name_or_address_fragment(
    db: AsyncSession, make_customer: Make
) -> None:
    maud = await make_customer("Maud Quimby", email="mq@quimby.example")
    by_name = await search.search(db, "quimby", me=1)
    assert maud.id in [c.id for c in by_name.customers]
    by_typo = await search.search(db, "maud quimbee", me=1)
    assert maud.id in [c.id for c in by_typo.customers]


async def test_highlights_never_carry_markup_from_the_text(
    client: AsyncClient, make_token: Callable[..., Awaitable[Token]], make_ticket: Make
) -> None:
    await make_ticket("<b>bold</b> keyboard", body="<img src=x onerror=alert(1)> keyboard broken")
    agent = await make_token("agent")
    response = await client.get("/api/v1/search", headers=agent.headers, params={"q": "keyboard"})
    assert response.status_code == 200
    hit = response.json()["tickets"][0]
    assert "<b>" not in hit["subject_html"] and "&lt;b&gt;" in hit["subject_html"]
    assert "<img" not in hit["snippet_html"] and "<mark>keyboard</mark>" in hit["snippet_html"]
    empty = await client.get("/api/v1/search", headers=agent.headers, params={"q": "   "})
    assert empty.status_code == 422 and "q" in empty.json()["error"]["fields"]


async def test_only_the_newest_matches_are_ranked_when_a_word_is_everywhere(
    db: AsyncSession, make_ticket: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "RANKED_HITS", 2)
    made = [await make_ticket(f"Parcel {n}", body=f"where is parcel {n}") for n in range(4)]
    found = [t.id for t in (await search.search(db, "parcel", me=1)).tickets]
    # the two newest tickets (by subject and by message) are ranked; older ones wait for a
    # narrower query
    assert sorted(found) == sorted(t.id for t in made[-2:])
    narrower = [t.id for t in (await search.search(db, "parcel 0", me=1)).tickets]
    assert made[0].id in narrower


@pytest.mark.parametrize(
    ("word", "every"),
    [("parcel", 1), ("refund", 3), ("kerberos", 13)],  # dense, medium, sparse matches
)
async def test_newest_matches_are_the_same_whether_walked_or_found_by_the_index(
    db: AsyncSession,
    make_ticket: Make,
    make_user: Make,
    monkeypatch: pytest.MonkeyPatch,
    word: str,
    every: int,
) -> None:
    agent = await make_user("agent")
    made = []
    for n in range(40):
        hit = n % every == 0
        body = f"about the {word} issue, number {n}" if hit and n % 2 else f"ticket number {n}"
        subject = f"{word.title()} issue {n}" if hit and not n % 2 else f"Question {n}"
        made.append(
            (
                await make_ticket(subject, body=body, assignee_id=agent.id if n % 4 else None),
                hit,
                bool(n % 4),
            )
        )
    newest = [t.id for t, hit, _ in reversed(made) if hit]
    mine = [t.id for t, hit, assigned in reversed(made) if hit and assigned]
    monkeypatch.setattr(search, "RANKED_HITS", 5)
    # the index alone (the test database has no word statistics: no word counts as common)
    words = f"{word} issue"  # two words: walking is tried when both are common
    alone = [t.id for t in (await search.search(db, words, me=1)).tickets]
    assert sorted(alone) == sorted(newest[:5])
    monkeypatch.setattr(search, "COMMON_SHARE", 0.0)  # now every word is common
    # a probe of the newest 4 ids; walking on may look at 8 more tickets, else the index
    monkeypatch.setattr(search, "PROBE", 4)
    monkeypatch.setattr(search, "WALK_LIMIT", 8)
    walked = [t.id for t in (await search.search(db, words, me=1)).tickets]
    assert sorted(walked) == sorted(newest[:5])
    narrowed = [t.id for t in (await search.search(db, f"{word} assignee:me", me=agent.id)).tickets]
    # one common word alone goes to the index, and finds the same
    single = [t.id for t in (await search.search(db, word, me=1)).tickets]
    assert sorted(single) == sorted(walked)
    assert sorted(narrowed) == sorted(mine[:5])
    # the index for everything after the probe, or the probe over every id: the same tickets
    monkeypatch.setattr(search, "WALK_LIMIT", 0)
    indexed = [t.id for t in (await search.search(db, words, me=1)).tickets]
    assert sorted(indexed) == sorted(walked)
    monkeypatch.setattr(search, "PROBE", 10**9)
    probed = [t.id for t in (await search.search(db, words, me=1)).tickets]
    assert sorted(probed) == sorted(walked)
