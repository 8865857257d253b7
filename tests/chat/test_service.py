"""The chat service on the test's rolled-back transaction: tokens, states, sweep, texts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.chat import service
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, TooManyRequests, ValidationFailed
from servicecycle.kit.secrets import BadToken, Keyring

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def moment() -> Iterator[list[datetime]]:
    now = [T0]
    clock.set_source(lambda: now[0])
    yield now
    clock.set_source(None)


async def _kinds(db: AsyncSession, ticket_id: int) -> list[str]:
    rows = await db.scalars(
        select(Event.kind).where(Event.subject_id == str(ticket_id)).order_by(Event.id)
    )
    return [k for k in rows if k.startswith("chat.")]


def test_a_visitor_token_carries_only_its_visitor_and_purpose() -> None:
    keyring = Keyring(b"k" * 32)
    token, visitor_id = service.issue_token(keyring)
    assert service.read_token(keyring, token) == visitor_id
    with pytest.raises(BadToken):
        service.read_token(Keyring(b"o" * 32), token)
    with pytest.raises(BadToken):
        service.read_token(keyring, keyring.sign("portal", {"v": visitor_id}, expires_at=None))


def test_a_line_is_checked_for_emptiness_and_size() -> None:
    assert service.check_line("  hi  ") == "hi"
    for bad in ("", "   ", None, 5, "x" * (service.MAX_LINE_CHARS + 1)):
        with pytest.raises(ValidationFailed):
            service.check_line(bad)


async def test_unanswered_chats_are_missed_and_gone_visitors_end(
    db: AsyncSession, make_user: object, moment: list[datetime]
) -> None:
    agent = await make_user("agent")  # type: ignore[operator]
    await auth.set_availability(db, agent, "online", actor=Actor.system("test"))
    waiting = await service.start_chat(
        db, visitor_id="v1", name="Una", email=None, text_="Anyone?", origin=None
    )
    taken = await service.start_chat(
        db, visitor_id="v2", name="Ike", email=None, text_="Hello", origin=None
    )
    await service.take(db, taken.ticket_id, agent)
    with pytest.raises(Conflict):
        await service.agent_says(db, waiting.ticket_id, agent, "not taken yet")

    moment[0] = T0 + service.WAIT_LIMIT - timedelta(seconds=1)
    assert await service.sweep(db) == (0, 0)
    moment[0] = T0 + service.WAIT_LIMIT
    assert await service.sweep(db) == (1, 0)
    assert waiting.state == "missed" and taken.state == "active"
    moment[0] = T0 + service.GONE_AFTER
    assert await service.sweep(db) == (0, 1)
    assert taken.state == "ended"
    assert await _kinds(db, waiting.ticket_id) == ["chat.started", "chat.missed"]
    assert await _kinds(db, taken.ticket_id) == ["chat.started", "chat.taken", "chat.ended"]
    # a visitor who comes back after their chat ended starts a new one
    assert await service.current_chat(db, "v2") is None
    assert await service.current_chat(db, "v1") is waiting  # missed: they may still add


async def test_the_widget_texts_have_defaults_and_are_validated(db: AsyncSession) -> None:
    texts = await service.texts(db)
    assert texts.greeting == service.DEFAULT_GREETING
    admin = Actor.system("test")
    with pytest.raises(ValidationFailed) as refused:
        await service.update_texts(db, greeting=" ", offline_text="x", actor=admin)
    assert refused.value.fields == {"greeting": "1-500 characters"}
    await service.update_texts(db, greeting="Hej!", offline_text="Back at 9.", actor=admin)
    assert await service.texts(db) == service.Texts("Hej!", "Back at 9.")


async def test_new_chats_are_limited_per_visitor_and_per_address(
    db: AsyncSession, make_user: object, moment: list[datetime]
) -> None:
    agent = await make_user("agent")  # type: ignore[operator]
    await auth.set_availability(db, agent, "online", actor=Actor.system("test"))

    async def start(visitor: str, client: str | None = None) -> object:
        return await service.start_chat(
            db, visitor_id=visitor, name="V", email=None, text_="hi", origin=None, client=client
        )

    for _ in range(service.MAX_CHATS_PER_HOUR):
        await start("same-visitor")
    with pytest.raises(TooManyRequests):
        await start("same-visitor")

    key = service.client_key(Keyring(b"k" * 32), "203.0.113.9")
    assert key == service.client_key(Keyring(b"k" * 32), "203.0.113.9") and key
    assert "203.0.113.9" not in key
    for n in range(service.MAX_CHATS_PER_ADDRESS):
        await start(f"fresh-token-{n}", key)
    with pytest.raises(TooManyRequests):
        await start("yet-another-token", key)
    moment[0] = T0 + timedelta(hours=1, seconds=1)  # an hour later they may again
    await start("yet-another-token", key)


async def test_a_batch_mails_replies_to_missed_chats_as_the_single_service_does(
    db: AsyncSession, make_user: object, moment: list[datetime]
) -> None:
    from servicecycle.channels.models import OutboundMail
    from servicecycle.tickets import bulk
    from servicecycle.tickets import service as tickets

    agent = await make_user("agent")  # type: ignore[operator]
    chats = [
        await service.start_chat(
            db,
            visitor_id=f"v{n}",
            name="Una",
            email=f"una{n}@example.com",
            text_="Hi?",
            origin=None,
        )
        for n in range(3)
    ]
    assert all(chat.state == "missed" for chat in chats)
    single, *batched = [await tickets.get_ticket(db, chat.ticket_id) for chat in chats]
    by = Actor.user(agent.id)
    moment[0] = T0 + timedelta(minutes=30)
    await tickets.add_message(
        db, single, public=True, author_type="agent", author_user_id=agent.id,
        body_text="We can help.", actor=by,
    )  # fmt: skip
    await bulk.add_messages(
        db,
        [
            bulk.NewMessage(
                t, True, "agent", "We can help.", moment[0], by, author_user_id=agent.id
            )
            for t in batched
        ],
    )

    async def mails(ticket_id: int) -> list[tuple[str, str, datetime, datetime]]:
        rows = await db.scalars(
            select(OutboundMail)
            .where(OutboundMail.ticket_id == ticket_id)
            .order_by(OutboundMail.id)
        )
        return [
            (m.kind, m.body_text.replace(f"#{ticket_id}", "#T"), m.created_at, m.next_attempt_at)
            for m in rows
        ]

    expected = await mails(single.id)
    assert [m[0] for m in expected] == ["acknowledgement", "reply"]  # the missed chat's, ours
    for ticket in batched:
        assert await mails(ticket.id) == expected
        kinds = await db.scalars(
            select(Event.kind).where(Event.subject_id == str(ticket.id)).order_by(Event.id)
        )
        assert "mail.queued" in list(kinds)
