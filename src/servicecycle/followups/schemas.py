"""API shapes of follow-ups."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["check_in", "recovery", "other"]
Outcome = Literal["resolved", "no_answer", "escalated", "other"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FollowUpCreate(Strict):
    ticket_id: int | None = Field(default=None, examples=[1042])
    customer_id: int | None = Field(
        default=None, description="Required without a ticket; else the ticket's requester"
    )
    owner_id: int | None = Field(
        default=None, description="An active agent or admin; empty: nobody yet", examples=[7]
    )
    kind: Kind = "check_in"
    reason: str = Field(max_length=2000, examples=["Check the replacement router works"])
    due_at: datetime = Field(examples=["2026-12-09T09:00:00Z"])


class FollowUpUpdate(Strict):
    owner_id: int | None = Field(default=None, examples=[7])
    reason: str | None = Field(default=None, max_length=2000)
    due_at: datetime | None = Field(default=None, examples=["2026-12-10T09:00:00Z"])
    version: int | None = Field(default=None, description="Instead of If-Match")


class FollowUpDone(Strict):
    outcome: Outcome | None = Field(
        default=None, description="Required: how it ended", examples=["resolved"]
    )
    note: str = Field(default="", max_length=2000, examples=["Router works; customer happy"])


class FollowUpCancel(Strict):
    note: str = Field(default="", max_length=2000)


class CheckIn(Strict):
    body: str | None = Field(
        default=None,
        max_length=20000,
        description="The text to send; empty: the desk's check-in template, filled in",
    )


class FollowUpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int | None
    customer_id: int
    owner_id: int | None
    kind: str
    reason: str
    due_at: datetime
    state: str
    outcome: str | None
    outcome_note: str
    created_by_type: str
    created_by_id: str | None
    created_at: datetime
    done_at: datetime | None
    sent_at: datetime | None
    source_type: str | None
    source_id: str | None
    version: int
    overdue: bool = False


class FollowUpPage(BaseModel):
    items: list[FollowUpRead]
    next_cursor: str | None


class CheckInRead(BaseModel):
    follow_up: FollowUpRead
    message_id: int
    body: str


class CheckInPreview(BaseModel):
    body: str


class CountsRead(BaseModel):
    overdue: int = Field(examples=[2])
    due_today: int = Field(examples=[5])
    open: int = Field(examples=[31])


class RecoveryRead(BaseModel):
    opened: int = Field(examples=[10])
    closed_in_time: int = Field(examples=[6])
    closed_late: int = Field(examples=[2])
    still_open: int = Field(examples=[1])
    cancelled: int = Field(examples=[1])
    rate: float | None = Field(
        description="closed (in time or late) / opened; null when none were opened",
        examples=[0.8],
    )


class SettingsRead(BaseModel):
    recovery_hours: int = Field(examples=[24])
    check_in_template: str = Field(description="Empty: the built-in text")
    default_check_in_template: str


class SettingsUpdate(Strict):
    recovery_hours: int = Field(ge=1, le=720, examples=[24])
    check_in_template: str = Field(default="", max_length=10000)
