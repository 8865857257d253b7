from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit.errors import ValidationFailed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _three(db: AsyncSession) -> None:
    actor = Actor.user(7)
    await events.record(
        db,
        "ticket.created",
        subject_type="ticket",
        subject_id=1,
        actor=actor,
        data={"channel": "email"},
        occurred_at=T0,
    )
    await events.record(
        db,
        "status.changed",
        subject_type="ticket",
        subject_id=1,
        actor=actor,
        data={"to": "open"},
        occurred_at=T0 + timedelta(hours=1),
    )
    await events.record(
        db,
        "ticket.created",
        subject_type="ticket",
        subject_id=2,
        actor=Actor.system("email"),
        occurred_at=T0 + timedelta(days=1),
    )


async def test_record_keeps_kind_subject_actor_data_and_time(db: AsyncSession) -> None:
    await _three(db)
    page = await events.query(db, subject_type="ticket", subject_id="1", newest_first=False)
    assert [(e.kind, e.data) for e in page.items] == [
        ("ticket.created", {"channel": "email"}),
        ("status.changed", {"to": "open"}),
    ]
    first = page.items[0]
    assert (first.actor_type, first.actor_id, first.occurred_at) == ("user", "7", T0)


async def test_query_by_kind_and_time_range(db: AsyncSession) -> None:
    await _three(db)
    created = await events.query(
        db, kinds=["ticket.created"], since=T0, until=T0 + timedelta(days=2)
    )
    assert sorted(e.subject_id for e in created.items) == ["1", "2"]
    first_day = await events.query(db, since=T0, until=T0 + timedelta(hours=2))
    assert [e.kind for e in first_day.items] == ["status.changed", "ticket.created"]


async def test_cursor_walks_every_event_once(db: AsyncSession) -> None:
    for n in range(7):
        await events.record(
            db,
            "x.happened",
            subject_type="thing",
            subject_id=n,
            actor=Actor.system(),
            occurred_at=T0,
        )
    seen: list[str] = []
    cursor = None
    while True:
        page = await events.query(db, kinds=["x.happened"], limit=3, cursor=cursor)
        seen += [e.subject_id for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [str(n) for n in reversed(range(7))]


async def test_a_damaged_cursor_is_a_validation_error(db: AsyncSession) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await events.query(db, cursor="not-a-cursor!")
    assert "cursor" in caught.value.fields


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET kind = 'forged'",
        "DELETE FROM events",
        "TRUNCATE events",
    ],
)
async def test_the_database_refuses_to_change_or_remove_events(
    db: AsyncSession, statement: str
) -> None:
    await _three(db)
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.begin_nested():
            await db.execute(text(statement))
    count = await db.scalar(text("SELECT count(*) FROM events WHERE kind <> 'forged'"))
    assert count is not None and count >= 3


async def test_a_subscriber_to_star_hears_every_kind_after_its_own_handlers(
    db: AsyncSession,
) -> None:
    from servicecycle.events import bus
    from servicecycle.events.models import Event

    heard: list[str] = []

    async def star(session: AsyncSession, event: Event) -> None:
        heard.append(f"*:{event.kind}")

    async def exact(session: AsyncSession, event: Event) -> None:
        heard.append(f"exact:{event.kind}")

    bus.load_all()
    bus._handlers.setdefault("*", []).append(star)
    bus._handlers.setdefault("brand.new_kind", []).append(exact)
    try:
        await events.record(
            db, "brand.new_kind", subject_type="thing", subject_id=1, actor=Actor.system()
        )
        await events.record(
            db, "another.kind", subject_type="thing", subject_id=1, actor=Actor.system()
        )
    finally:
        bus._handlers["*"].remove(star)
        del bus._handlers["brand.new_kind"]
    assert heard == ["exact:brand.new_kind", "*:brand.new_kind", "*:another.kind"]
