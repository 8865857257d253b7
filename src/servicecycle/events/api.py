"""Read the event log over the API (admins and analysts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from servicecycle.auth.deps import ApiAnalyst, Db
from servicecycle.events import service
from servicecycle.events.schemas import EventPage, EventRead

router = APIRouter(prefix="/api/v1", tags=["event log"])


@router.get("/events", response_model=EventPage, summary="Events, newest first")
async def list_events(
    principal: ApiAnalyst,
    db: Db,
    subject_type: str | None = None,
    subject_id: str | None = None,
    kind: Annotated[list[str] | None, Query(description="One or more event kinds")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> EventPage:
    page = await service.query(
        db,
        subject_type=subject_type,
        subject_id=subject_id,
        kinds=kind,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return EventPage(
        items=[EventRead.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )
