"""API shapes of customer profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from servicecycle.profiles.service import Profile

Segment = Literal["promoter", "passive", "detractor", "at_risk", "unknown"]


class PartRead(BaseModel):
    name: str = Field(examples=["Feedback"])
    value: str = Field(description="The fact, in words", examples=["NPS 9"])
    points: int = Field(examples=[36])
    max_points: int = Field(examples=[40])
    explanation: str = Field(examples=["Latest answer: 9 on 0-10, given 2026-10-23."])


class AnswerRead(BaseModel):
    kind: str = Field(examples=["nps"])
    score: int = Field(examples=[9])
    ticket_id: int
    comment: str
    answered_at: datetime


class HistoryRead(BaseModel):
    tickets_total: int
    tickets_open: int
    tickets_solved: int = Field(description="Solved or closed")
    surveys_answered: int
    latest_answers: list[AnswerRead] = Field(description="Up to 5, newest first")
    follow_ups_open: int
    follow_ups_done: int
    first_contact_at: datetime | None = Field(description="When their first ticket came in")


class ProfileRead(BaseModel):
    customer_id: int
    name: str
    score: int | None = Field(
        description="Health 0-100, the sum of the parts; null with no ticket and no answer",
        examples=[96],
    )
    segment: Segment = Field(examples=["promoter"])
    parts: list[PartRead]
    history: HistoryRead
    computed_at: datetime

    @classmethod
    def of(cls, profile: Profile) -> ProfileRead:
        h = profile.history
        return cls(
            customer_id=profile.customer.id,
            name=profile.customer.name,
            score=profile.score,
            segment=profile.segment,
            parts=[PartRead(**vars(p)) for p in profile.parts],
            history=HistoryRead(
                tickets_total=h.tickets_total,
                tickets_open=h.tickets_open,
                tickets_solved=h.tickets_solved,
                surveys_answered=h.surveys_answered,
                latest_answers=[
                    AnswerRead(
                        kind=a.kind,
                        score=a.score,
                        ticket_id=a.ticket_id,
                        comment=a.comment,
                        answered_at=a.answered_at,
                    )
                    for a in h.latest_answers
                ],
                follow_ups_open=h.follow_ups_open,
                follow_ups_done=h.follow_ups_done,
                first_contact_at=h.first_contact_at,
            ),
            computed_at=profile.computed_at,
        )


EXAMPLE = {
    "customer_id": 42,
    "name": "Ana Lima",
    "score": 91,
    "segment": "promoter",
    "parts": [
        {
            "name": "Feedback",
            "value": "NPS 9",
            "points": 36,
            "max_points": 40,
            "explanation": "Latest answer: 9 on 0-10, given 2026-10-23.",
        },
        {
            "name": "Open tickets",
            "value": "1 open",
            "points": 15,
            "max_points": 20,
            "explanation": "1 ticket still open: 5 points off each.",
        },
        {
            "name": "Reopens",
            "value": "0 reopened",
            "points": 20,
            "max_points": 20,
            "explanation": "No solved ticket came back in the last 90 days.",
        },
        {
            "name": "Waiting",
            "value": "2.5 h",
            "points": 20,
            "max_points": 20,
            "explanation": "Median wait for a first reply over the last 4 tickets.",
        },
    ],
    "history": {
        "tickets_total": 4,
        "tickets_open": 1,
        "tickets_solved": 3,
        "surveys_answered": 2,
        "latest_answers": [
            {
                "kind": "nps",
                "score": 9,
                "ticket_id": 1007,
                "comment": "Quick and kind.",
                "answered_at": "2026-10-23T10:12:00Z",
            }
        ],
        "follow_ups_open": 0,
        "follow_ups_done": 1,
        "first_contact_at": "2025-03-14T08:01:00Z",
    },
    "computed_at": "2026-11-02T09:00:00Z",
}
