"""Send and read notifications. Flushes; the caller commits."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.notifications.models import Notification


async def notify(
    session: AsyncSession,
    user_ids: list[int],
    *,
    text: str,
    kind: str,
    ticket_id: int | None,
    actor: Actor,
) -> list[Notification]:
    """One notification per user (duplicates in ``user_ids`` are sent once)."""
    sent = []
    for user_id in dict.fromkeys(user_ids):
        note = Notification(
            user_id=user_id,
            ticket_id=ticket_id,
            kind=kind,
            text=text[:2000],
            created_at=clock.now(),
        )
        session.add(note)
        sent.append(note)
    await session.flush()
    if sent:
        await record(
            session,
            "notification.sent",
            subject_type="ticket" if ticket_id else "user",
            subject_id=ticket_id or sent[0].user_id,
            actor=actor,
            data={"user_ids": [n.user_id for n in sent], "kind": kind, "text": text[:200]},
        )
    return sent


async def unread(session: AsyncSession, user_id: int, *, limit: int = 50) -> list[Notification]:
    stmt = (
        select(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def unread_count(session: AsyncSession, user_id: int) -> int:
    stmt = select(func.count()).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    return int(await session.scalar(stmt) or 0)


async def mark_read(session: AsyncSession, user_id: int, ids: list[int] | None) -> int:
    """Mark these (or all) of the user's notifications read; another user's are untouched."""
    stmt = update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await session.execute(stmt.values(read_at=clock.now()))
    return int(result.rowcount)  # type: ignore[attr-defined]
