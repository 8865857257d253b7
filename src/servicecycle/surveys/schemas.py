"""API shapes of surveys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurveyCreate(Strict):
    name: str = Field(max_length=200)
    kind: str = Field(description="csat | nps | ces | custom")
    question: str | None = Field(default=None, description="Default: the kind's standard one")
    why_question: str | None = Field(default=None, description='The "why?" follow-up')
    scale_min: int | None = Field(default=None, description="custom only (0-10)")
    scale_max: int | None = Field(default=None, description="custom only (1-10)")
    enabled: bool = False


class SurveyUpdate(Strict):
    name: str | None = None
    question: str | None = None
    why_question: str | None = None
    enabled: bool | None = None


class RuleCreate(Strict):
    delay_hours: int = Field(default=24, description="Hours after the ticket is solved")
    channels: list[str] = Field(default_factory=list, description="Empty: every channel")
    tiers: list[str] = Field(default_factory=list, description="Customer tiers; empty: all")
    segments: list[str] = Field(default_factory=list, description="Customer segments; empty: all")
    throttle_days: int = Field(default=30, description="At most one survey per customer in N days")
    enabled: bool = True


class RuleUpdate(Strict):
    """Only the fields sent change; send the version you read (or If-Match)."""

    delay_hours: int | None = Field(default=None, description="Hours after the ticket is solved")
    channels: list[str] | None = Field(default=None, description="Empty: every channel")
    tiers: list[str] | None = Field(default=None, description="Customer tiers; empty: all")
    segments: list[str] | None = Field(default=None, description="Customer segments; empty: all")
    throttle_days: int | None = Field(default=None, description="At most one survey in N days")
    enabled: bool | None = None
    version: int | None = Field(default=None, description="The version you read (or If-Match)")


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    survey_id: int
    delay_hours: int
    channels: list[str]
    tiers: list[str]
    segments: list[str]
    throttle_days: int
    enabled: bool
    version: int


class SurveyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    question: str
    why_question: str
    scale_min: int
    scale_max: int
    enabled: bool
    rules: list[RuleRead] = []


class ResponseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    invitation_id: int
    survey_id: int
    kind: str
    score: int
    comment: str
    source: str
    ticket_id: int
    customer_id: int
    agent_id: int | None
    team_id: int | None
    channel: str
    category: str | None
    answered_at: datetime
    updated_at: datetime


class ScoreRow(BaseModel):
    """One group's score: NPS carries se, ci_low and ci_high (95%); CES its mean and
    pct_easy; CSAT the per cent satisfied (4-5) as ``score``."""

    model_config = ConfigDict(extra="allow")

    group: str
    key: Any
    label: str
    kind: str
    n: int
    score: float | None
    sent: int
    response_rate: float | None


class CustomerSurveys(BaseModel):
    customer_id: int
    responses: list[ResponseRead]
    scores: dict[str, dict[str, Any]]


class RatingQuestion(BaseModel):
    """A question the customer may answer about their own solved request, and their
    answer so far."""

    model_config = ConfigDict(from_attributes=True)

    kind: str
    question: str
    why_question: str
    scale_min: int
    scale_max: int
    low_label: str
    high_label: str
    score: int | None
    comment: str


class RatingCreate(Strict):
    kind: str = Field(description="csat | nps | ces: one the desk asks (see GET)")
    # strict: JSON true, "4" or 4.0 is not a score (lax mode would take them as 1 and 4)
    score: StrictInt = Field(description="On the survey's scale: CSAT 1-5, NPS 0-10, CES 1-7")
    comment: str | None = Field(default=None, description='The "why?" (at most 4,000 characters)')


class RatingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ticket_id: int
    kind: str
    score: int
    comment: str
    source: str
    answered_at: datetime
    updated_at: datetime
