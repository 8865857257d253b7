"""REST routes for the signed-in user's notifications."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from servicecycle.auth.deps import ApiUser, Db
from servicecycle.notifications import service

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int | None
    kind: str
    text: str
    created_at: datetime


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(default=None, description="Omit to mark all read")


@router.get(
    "/me/notifications", response_model=list[NotificationRead], summary="My unread notifications"
)
async def unread(principal: ApiUser, db: Db) -> list[NotificationRead]:
    return [
        NotificationRead.model_validate(n) for n in await service.unread(db, principal.identity.id)
    ]


@router.post("/me/notifications/read", response_model=dict[str, int])
async def mark_read(body: MarkRead, principal: ApiUser, db: Db) -> dict[str, int]:
    return {"marked": await service.mark_read(db, principal.identity.id, body.ids)}
