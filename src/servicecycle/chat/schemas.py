"""API shapes of live chat."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class ChatRating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: JSON true, "4" or 4.0 is not a score (lax mode would take them as 1 and 4)
    score: StrictInt = Field(description="CSAT, 1 (very dissatisfied) to 5 (very satisfied)")
    comment: str | None = Field(default=None, description="Optional, at most 4,000 characters")


class ChatRated(BaseModel):
    kind: str
    score: int
    comment: str
