"""Every event an enabled subscription wants becomes a delivery row, in the transaction that
recorded the event (the outbox). Kinds recorded later are heard too (``*``), except those
``kinds.PRIVATE`` keeps to the desk."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.webhooks import service
from servicecycle.webhooks.kinds import private


@subscribe("*")
async def on_event(session: AsyncSession, event: Event) -> None:
    if not private(event.kind):
        await service.enqueue_event(session, event)


async def _wants(session: AsyncSession, kind: str) -> bool:
    return not private(kind) and await service.listens(session, kind)


on_event.wants = _wants  # type: ignore[attr-defined]


@batch_twin(on_event)
async def on_events(session: AsyncSession, events: list[Appended]) -> None:
    if not private(events[0].kind):
        await service.enqueue_events(session, events)
