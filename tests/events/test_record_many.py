"""Many events at once: one INSERT in the given order, then the bus hears them run by run,
through a subscriber's batch twin where it has one, else one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.events.service import Actor, NewEvent, record_many

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
heard: list[tuple[str, Any]] = []


@subscribe("test.batched")
async def one(session: AsyncSession, event: Any) -> None:
    heard.append(("one", event.subject_id))


@batch_twin(one)
async def many(session: AsyncSession, events: list[Appended]) -> None:
    heard.append(("many", [e.subject_id for e in events]))


@subscribe("test.single")
async def only_one(session: AsyncSession, event: Any) -> None:
    heard.append(("single", event.subject_id))


def _new(kind: str, subject: int, minutes: int) -> NewEvent:
    return NewEvent(
        kind, "thing", subject, Actor.system("test"), T0 + timedelta(minutes=minutes), {"n": 1}
    )


async def test_rows_in_order_and_each_run_through_the_twin_or_one_by_one(db: AsyncSession) -> None:
    heard.clear()
    appended = await record_many(
        db,
        [
            _new("test.batched", 1, 0),
            _new("test.batched", 2, 1),
            _new("test.single", 3, 2),
            _new("test.single", 4, 3),
            _new("test.batched", 5, 4),
            _new("test.batched", 5, 5),  # the same subject twice: one by one
        ],
    )
    rows = (
        await db.scalars(select(Event).where(Event.kind.like("test.%")).order_by(Event.id))
    ).all()
    assert [(r.id, r.subject_id, r.occurred_at, r.data) for r in rows] == [
        (a.id, a.subject_id, a.occurred_at, {"n": 1}) for a in appended
    ]
    assert [r.subject_id for r in rows] == ["1", "2", "3", "4", "5", "5"]
    assert heard == [
        ("many", ["1", "2"]),
        ("single", "3"),
        ("single", "4"),
        ("one", "5"),
        ("one", "5"),
    ]
    assert await record_many(db, []) == []


async def test_the_rows_are_those_record_writes_whatever_the_values(db: AsyncSession) -> None:
    from zoneinfo import ZoneInfo

    from servicecycle.events.service import record

    odd: dict[str, Any] = {
        "text": 'a "quote", a \\ backslash, {braces}, a comma, NULL, ünïcode ✓\n',
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "none": None,
    }
    moment = datetime(2026, 3, 2, 10, 30, 15, 123456, tzinfo=ZoneInfo("Europe/Paris"))
    single = await record(
        db,
        "test.odd",
        subject_type='th"ing',
        subject_id="{1,2}",
        actor=Actor("system"),
        data=odd,
        occurred_at=moment,
    )
    [many] = await record_many(
        db, [NewEvent("test.odd", 'th"ing', "{1,2}", Actor("system"), moment, odd)]
    )
    rows = (
        await db.scalars(select(Event).where(Event.kind == "test.odd").order_by(Event.id))
    ).all()
    assert [r.id for r in rows] == [single.id, many.id]
    fields = ("subject_type", "subject_id", "actor_type", "actor_id", "data", "occurred_at")
    for row in rows:
        await db.refresh(row)
    assert [getattr(rows[1], f) for f in fields] == [getattr(rows[0], f) for f in fields]
    assert rows[1].data == odd and rows[1].occurred_at == moment and rows[1].actor_id is None
