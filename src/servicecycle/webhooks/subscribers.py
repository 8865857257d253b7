"""Every event of the catalogue that an enabled subscription wants becomes a delivery row,
in the transaction that recorded the event (the outbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.bus import subscribe
from servicecycle.events.models import Event
from servicecycle.webhooks import service
from servicecycle.webhooks.kinds import CATALOGUE


@subscribe(*CATALOGUE)
async def on_event(session: AsyncSession, event: Event) -> None:
    await service.enqueue_event(session, event)


async def _wants(session: AsyncSession, kind: str) -> bool:
    return await service.listens(session, kind)


on_event.wants = _wants  # type: ignore[attr-defined]
