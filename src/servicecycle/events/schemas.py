"""API shapes of the event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    kind: str
    subject_type: str
    subject_id: str
    actor_type: str
    actor_id: str | None
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str | None
