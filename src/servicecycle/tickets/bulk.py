"""Changes to many tickets at once: all in one transaction, or none."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor
from servicecycle.kit.errors import NotFound, ServiceError, ValidationFailed
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.service import update_ticket

MAX_BULK = 500


async def bulk_update(
    session: AsyncSession,
    ticket_ids: list[int],
    *,
    changes: dict[str, Any],
    add_tags: list[str] | None = None,
    remove_tags: list[str] | None = None,
    actor: Actor,
) -> list[Ticket]:
    """Apply the same change to every ticket; the first ticket that refuses stops them all
    (the caller's transaction rolls back) and the error names it."""
    ids = list(dict.fromkeys(ticket_ids))
    if not ids or len(ids) > MAX_BULK:
        raise ValidationFailed("Choose 1 to 500 tickets", fields={"ids": f"1 to {MAX_BULK} ids"})
    if not changes and not add_tags and not remove_tags:
        raise ValidationFailed("Nothing to change", fields={"changes": "empty"})
    rows = await session.scalars(select(Ticket).where(Ticket.id.in_(ids)).with_for_update())
    found = {ticket.id: ticket for ticket in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"No ticket {', '.join(map(str, missing))}", fields={"ids": "unknown ids"})
    for ticket_id in ids:
        ticket = found[ticket_id]
        these = dict(changes)
        if add_tags or remove_tags:
            tags = (set(ticket.tags) | {t.lower() for t in add_tags or []}) - {
                t.lower() for t in remove_tags or []
            }
            these["tags"] = sorted(tags)
        try:
            await update_ticket(session, ticket, expected_version=None, changes=these, actor=actor)
        except ServiceError as exc:
            exc.message = f"Ticket {ticket_id}: {exc.message}. No ticket was changed."
            exc.extra = {**exc.extra, "ticket_id": ticket_id}
            raise
    return [found[i] for i in ids]
