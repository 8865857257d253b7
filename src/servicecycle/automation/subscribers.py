"""Triggers and routing hear of ticket events in the transaction that recorded them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.automation import routing, service
from servicecycle.automation.rules import EVENT_KINDS
from servicecycle.events.bus import subscribe
from servicecycle.events.models import Event
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import service as tickets


@subscribe(*EVENT_KINDS)
async def on_event(session: AsyncSession, event: Event) -> None:
    await service.run_triggers(session, event)


async def _wants(session: AsyncSession, kind: str) -> bool:
    return await service.listens(session, kind)


on_event.wants = _wants  # type: ignore[attr-defined]


@subscribe("ticket.created", "assigned")
async def on_team_work(session: AsyncSession, event: Event) -> None:
    """A ticket for a routed team without an agent is routed at once (after triggers)."""
    if event.subject_type != "ticket" or not event.subject_id.isdigit():
        return
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except NotFound:
        return
    await routing.route(session, ticket)


@subscribe("user.availability_changed")
async def on_online(session: AsyncSession, event: Event) -> None:
    if event.data.get("to") == "online":
        user = await auth.get_user(session, int(event.subject_id))
        await routing.drain(session, user)
