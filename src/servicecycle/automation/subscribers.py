"""Triggers hear of ticket events in the transaction that recorded them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.automation import service
from servicecycle.automation.rules import EVENT_KINDS
from servicecycle.events.bus import subscribe
from servicecycle.events.models import Event


@subscribe(*EVENT_KINDS)
async def on_event(session: AsyncSession, event: Event) -> None:
    await service.run_triggers(session, event)
