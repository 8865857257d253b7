"""API shapes of the service-standards domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalendarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    zone: str
    week: dict[str, list[list[str]]]
    holiday_country: str | None
    holiday_region: str | None
    closed_days: list[str]
    version: int


class CalendarCreate(Strict):
    name: str = Field(max_length=120, examples=["London office"])
    zone: str = Field(max_length=64, examples=["Europe/London"])
    week: dict[str, list[list[str]]] = Field(
        description='Weekday ("0" = Monday) to shifts ["HH:MM", "HH:MM"]; an end before the start '
        "runs past midnight",
        examples=[
            {"0": [["09:00", "17:00"]], "1": [["09:00", "17:00"]], "5": [["22:00", "06:00"]]}
        ],
    )
    holiday_country: str | None = Field(default=None, max_length=8, examples=["GB"])
    holiday_region: str | None = Field(default=None, max_length=16, examples=["ENG"])
    closed_days: list[str] = Field(default_factory=list, examples=[["2026-12-24"]])


class CalendarUpdate(Strict):
    """Only the fields sent change; the calendar that results is checked as a whole."""

    version: int | None = None
    name: str | None = Field(default=None, max_length=120)
    zone: str | None = Field(default=None, max_length=64)
    week: dict[str, list[list[str]]] | None = None
    holiday_country: str | None = Field(default=None, max_length=8)
    holiday_region: str | None = Field(default=None, max_length=16)
    closed_days: list[str] | None = None


Metric = Literal["first_reply", "next_reply", "periodic_update", "resolution"]
PauseStatus = Literal["pending", "on-hold"]


def _both() -> list[PauseStatus]:
    return ["pending", "on-hold"]


class PolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    position: int
    active: bool
    conditions: dict[str, list[Any]]
    targets: dict[str, dict[str, Any]]
    calendar_id: int | None
    pause_statuses: list[str]
    warn_minutes: int
    version: int


class PolicyCreate(Strict):
    name: str = Field(max_length=120, examples=["VIP e-mail"])
    conditions: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="priority, channel, tier, team_id, tags: lists of accepted values",
        examples=[{"tier": ["vip"], "channel": ["email", "web"]}],
    )
    targets: dict[str, dict[str, Any]] = Field(
        examples=[
            {
                "first_reply": {"minutes": 60, "business": True},
                "resolution": {"minutes": 960, "business": True},
            }
        ],
    )
    calendar_id: int | None = None
    pause_statuses: list[PauseStatus] = Field(default_factory=_both)
    warn_minutes: int = Field(default=30, ge=0, le=10_080)


class PolicyUpdate(Strict):
    version: int | None = None
    name: str | None = Field(default=None, max_length=120)
    position: int | None = None
    active: bool | None = None
    conditions: dict[str, list[Any]] | None = None
    targets: dict[str, dict[str, Any]] | None = None
    calendar_id: int | None = None
    pause_statuses: list[PauseStatus] | None = None
    warn_minutes: int | None = Field(default=None, ge=0, le=10_080)


class ClockRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    metric: Metric
    state: Literal["running", "paused", "met", "breached", "cancelled"]
    policy_id: int | None
    target_minutes: int
    business: bool
    started_at: datetime
    used_minutes: float
    due_at: datetime | None
    warn_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None
