"""Append to the event log and read it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import versions
from servicecycle.events.bus import Appended, dispatch, dispatch_batch
from servicecycle.events.models import Event
from servicecycle.kit import clock
from servicecycle.kit.pagination import Page, decode_id_cursor, encode_cursor


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a user, a customer, or the system itself (jobs, automations)."""

    type: str
    id: str | None = None

    @classmethod
    def user(cls, user_id: int) -> Actor:
        return cls("user", str(user_id))

    @classmethod
    def system(cls, name: str | None = None) -> Actor:
        return cls("system", name)


SYSTEM = Actor.system()
_EVENTS = cast(Table, Event.__table__)
_APPEND = insert(_EVENTS).returning(_EVENTS.c.id)
# many rows in one INSERT of one text whatever their number (so the driver parses it once
# and the server can prepare it): the rows go as one JSON document (one C-speed json.dumps,
# where arrays of text cost a Python escape per element); the rows are numbered in the
# document's order
_APPEND_MANY = text("""
INSERT INTO events (kind, subject_type, subject_id, actor_type, actor_id, data, occurred_at)
SELECT e->>0, e->>1, e->>2, e->>3, e->>4, e->5, CAST(e->>6 AS timestamptz)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
RETURNING id
""")


async def record(
    session: AsyncSession,
    kind: str,
    *,
    subject_type: str,
    subject_id: int | str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Append one event inside the caller's transaction (flushed, not committed); an event
    that means configuration changed draws that configuration a new version."""
    values = {
        "kind": kind,
        "subject_type": subject_type,
        "subject_id": str(subject_id),
        "actor_type": actor.type,
        "actor_id": actor.id,
        "data": data or {},
        "occurred_at": occurred_at or clock.now(),
    }
    await session.flush()  # the change the event tells of goes first
    # one plain INSERT: the log is append-only, so its rows need no unit-of-work tracking
    event = Event(id=await session.scalar(_APPEND, values), **values)
    if (domain := versions.domain_of(kind)) is not None:
        await versions.bump(session, domain)
    await dispatch(session, event)
    return event


@dataclass(frozen=True)
class NewEvent:
    """One event for ``record_many``: what ``record`` takes, with its moment."""

    kind: str
    subject_type: str
    subject_id: int | str
    actor: Actor
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


async def record_many(session: AsyncSession, events: list[NewEvent]) -> list[Appended]:
    """Append many events in one statement (``record``'s rows, in the given order), draw
    the configuration versions they mean, and dispatch them together: a subscriber with a
    batch twin hears them at once, any other one by one (``bus.dispatch_batch``)."""
    if not events:
        return []
    await session.flush()  # the changes the events tell of go first
    subject_ids = [str(e.subject_id) for e in events]
    rows = json.dumps(
        [
            [
                e.kind,
                e.subject_type,
                subject_id,
                e.actor.type,
                e.actor.id,
                e.data,
                e.occurred_at.isoformat(),
            ]
            for e, subject_id in zip(events, subject_ids, strict=True)
        ]
    )
    # the rows are numbered in the given order (ORDER BY the position), so the sorted ids
    # are the events' in that order
    ids = sorted((await session.execute(_APPEND_MANY, {"rows": rows})).scalars().all())
    appended = [
        Appended(
            i, e.kind, e.subject_type, subject_id, e.actor.type, e.actor.id, e.data, e.occurred_at
        )
        for i, e, subject_id in zip(ids, events, subject_ids, strict=True)
    ]
    for domain in dict.fromkeys(d for e in events if (d := versions.domain_of(e.kind))):
        await versions.bump(session, domain)
    await dispatch_batch(session, appended)
    return appended


async def query(
    session: AsyncSession,
    *,
    subject_type: str | None = None,
    subject_id: int | str | None = None,
    kinds: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    newest_first: bool = True,
) -> Page[Event]:
    """Events matching every given filter, newest first by default, by keyset cursor."""
    stmt = select(Event)
    if subject_type is not None:
        stmt = stmt.where(Event.subject_type == subject_type)
    if subject_id is not None:
        stmt = stmt.where(Event.subject_id == str(subject_id))
    if kinds:
        stmt = stmt.where(Event.kind.in_(kinds))
    if since is not None:
        stmt = stmt.where(Event.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(Event.occurred_at < until)
    if cursor is not None:
        after_id = decode_id_cursor(cursor)
        stmt = stmt.where(Event.id < after_id if newest_first else Event.id > after_id)
    order = Event.id.desc() if newest_first else Event.id.asc()
    rows = list((await session.scalars(stmt.order_by(order).limit(limit + 1))).all())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def timeline(
    session: AsyncSession, *, subjects: list[tuple[str, str]], limit: int
) -> list[Event]:
    """The latest ``limit`` events about any of ``subjects`` ((type, id) pairs), oldest first."""
    if not subjects:
        return []
    stmt = (
        select(Event)
        .where(tuple_(Event.subject_type, Event.subject_id).in_(subjects))
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit)
    )
    return list(reversed((await session.scalars(stmt)).all()))
