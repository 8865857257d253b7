"""API shapes of live chat."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChatRating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(description="CSAT, 1 (very dissatisfied) to 5 (very satisfied)")
    comment: str | None = Field(default=None, description="Optional, at most 4,000 characters")


class ChatRated(BaseModel):
    kind: str
    score: int
    comment: str
