"""Saved views (named filters) and who is looking at a ticket. Flushes; the caller commits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, PermissionDenied, ValidationFailed
from servicecycle.tickets.models import (
    CHANNELS,
    PRIORITIES,
    STATUSES,
    SavedView,
    Ticket,
    TicketViewer,
)
from servicecycle.tickets.service import TicketFilter, capped_count, filtered

VIEWER_FRESH = timedelta(seconds=30)
_FILTER_KEYS = {f.name for f in fields(TicketFilter)}


def filter_from(data: dict[str, Any]) -> TicketFilter:
    """A TicketFilter from stored or submitted JSON; unknown keys or values are a 422."""
    unknown = set(data) - _FILTER_KEYS
    if unknown:
        raise ValidationFailed(
            "Unknown filter", fields={f"filters.{k}": "no such filter" for k in unknown}
        )
    values = dict(data)
    if "statuses" in values:
        statuses = values["statuses"]
        if not isinstance(statuses, list) or any(s not in STATUSES for s in statuses):
            raise ValidationFailed(
                "Invalid statuses", fields={"filters.statuses": ", ".join(STATUSES)}
            )
        values["statuses"] = tuple(statuses)
    for key, choices in (("priority", PRIORITIES), ("channel", CHANNELS)):
        if values.get(key) is not None and values[key] not in choices:
            raise ValidationFailed(f"Invalid {key}", fields={f"filters.{key}": ", ".join(choices)})
    if values.get("sort", "updated") not in ("updated", "created", "solved"):
        raise ValidationFailed("Invalid sort", fields={"filters.sort": "updated, created, solved"})
    try:
        return TicketFilter(**values)
    except TypeError as exc:
        raise ValidationFailed("Invalid filters", fields={"filters": str(exc)}) from exc


def filter_to_json(flt: TicketFilter) -> dict[str, Any]:
    data = asdict(flt)
    data["statuses"] = list(flt.statuses) if flt.statuses else None
    return {k: v for k, v in data.items() if v not in (None, False)}


async def create_view(
    session: AsyncSession,
    *,
    name: str,
    filters: dict[str, Any],
    shared: bool,
    owner_id: int,
    is_admin: bool,
    actor: Actor,
) -> SavedView:
    if not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if shared and not is_admin:
        raise PermissionDenied("Only admins can share views with everyone")
    flt = filter_from(filters)
    view = SavedView(
        name=name.strip()[:120], owner_id=None if shared else owner_id, filters=filter_to_json(flt)
    )
    session.add(view)
    await session.flush()
    await record(
        session,
        "view.created",
        subject_type="view",
        subject_id=view.id,
        actor=actor,
        data={"name": view.name, "shared": shared, "filters": view.filters},
    )
    return view


async def views_for(session: AsyncSession, user_id: int) -> list[SavedView]:
    stmt = (
        select(SavedView)
        .where(or_(SavedView.owner_id.is_(None), SavedView.owner_id == user_id))
        .order_by(SavedView.owner_id.is_(None).desc(), SavedView.position, SavedView.id)
    )
    return list((await session.scalars(stmt)).all())


async def get_view(session: AsyncSession, view_id: int, *, user_id: int) -> SavedView:
    view = await session.get(SavedView, view_id)
    if view is None or (view.owner_id is not None and view.owner_id != user_id):
        raise NotFound(f"No view {view_id}")
    return view


async def delete_view(
    session: AsyncSession, view: SavedView, *, is_admin: bool, actor: Actor
) -> None:
    if view.owner_id is None and not is_admin:
        raise PermissionDenied("Only admins can delete shared views")
    await session.delete(view)
    await record(
        session,
        "view.deleted",
        subject_type="view",
        subject_id=view.id,
        actor=actor,
        data={"name": view.name},
    )


async def count(session: AsyncSession, flt: TicketFilter) -> int:
    """How many tickets the filter matches, up to ``COUNT_CAP + 1`` (see ``shown_count``)."""
    return int(await session.scalar(capped_count(filtered(flt))) or 0)


# -- who is looking -------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    user_id: int
    replying: bool
    seen_at: datetime


async def looking(
    session: AsyncSession, ticket: Ticket, *, user_id: int, replying: bool
) -> list[Viewer]:
    """Note that ``user_id`` has the ticket open; return the others who have it open now."""
    now = clock.now()
    stmt = insert(TicketViewer).values(
        ticket_id=ticket.id, user_id=user_id, seen_at=now, replying=replying
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TicketViewer.ticket_id, TicketViewer.user_id],
            set_={"seen_at": now, "replying": replying},
        )
    )
    rows = await session.scalars(
        select(TicketViewer)
        .where(
            TicketViewer.ticket_id == ticket.id,
            TicketViewer.user_id != user_id,
            TicketViewer.seen_at >= now - VIEWER_FRESH,
        )
        .order_by(TicketViewer.seen_at.desc())
    )
    return [Viewer(user_id=r.user_id, replying=r.replying, seen_at=r.seen_at) for r in rows]
