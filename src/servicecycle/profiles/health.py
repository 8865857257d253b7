"""A customer's health score and loyalty segment, as pure functions over plain facts.

The score (0-100) is the sum of four parts:

* **Feedback** (40 points): the latest NPS or CSAT answer of the last 180 days (the newer
  of the two). NPS ``s`` (0-10) gives ``40 * s / 10``; CSAT ``c`` (1-5) gives
  ``40 * (c - 1) / 4``. No answer in the window counts as neutral: 20 points.
* **Open tickets** (20 points): ``20 - 5 * open``, never below 0 (4 or more open: 0).
* **Reopens** (20 points): solved or closed tickets reopened in the last 90 days:
  none 20, one 10, two or more 0.
* **Waiting** (20 points): the median hours to a first reply over the last 10 tickets
  (a ticket still without a reply counts the hours it has waited so far): up to 4 hours 20,
  up to 24 hours 12, up to 72 hours 5, longer 0. No ticket waited: 20.

Each part is rounded to a whole number of points. A customer with no ticket and no answer
at all has no score (``None``) and no parts.

The loyalty segment, first rule that applies:

1. ``at_risk``: a score below 40, or a detractor answer (below) with a ticket still open;
2. ``promoter``: latest answer NPS 9-10 or CSAT 5;
3. ``detractor``: latest answer NPS 0-6 or CSAT 1-2;
4. ``passive``: latest answer NPS 7-8 or CSAT 3-4;
5. ``unknown``: no answer in the window (and not at risk).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

FEEDBACK_DAYS = 180
REOPEN_DAYS = 90
WAIT_TICKETS = 10
AT_RISK_BELOW = 40

FEEDBACK_POINTS = 40
OPEN_POINTS = 20
REOPEN_POINTS = 20
WAIT_POINTS = 20
WAIT_STEPS: tuple[tuple[float, int], ...] = ((4, 20), (24, 12), (72, 5))

SEGMENTS = ("promoter", "passive", "detractor", "at_risk", "unknown")


@dataclass(frozen=True)
class Answer:
    """A survey answer: ``kind`` nps or csat, its score and when it was given."""

    kind: str
    score: int
    at: datetime


@dataclass(frozen=True)
class Facts:
    """What the score is computed from. ``waits``: hours to a first reply of the latest
    tickets, newest first (a ticket still waiting counts its wait so far)."""

    now: datetime
    latest_nps: Answer | None = None
    latest_csat: Answer | None = None
    open_tickets: int = 0
    reopens: int = 0
    waits: Sequence[float] = ()
    tickets: int = 0


@dataclass(frozen=True)
class Part:
    name: str
    value: str  # the fact, in words ("NPS 9", "2 open", "3.5 h")
    points: int
    max_points: int
    explanation: str


@dataclass(frozen=True)
class Health:
    score: int | None
    parts: list[Part]
    segment: str
    feedback: Answer | None  # the answer the feedback part and the segment use


def recent_feedback(facts: Facts) -> Answer | None:
    """The newer of the latest NPS and CSAT answers, if given in the last 180 days (NPS on
    a tie)."""
    since = facts.now - timedelta(days=FEEDBACK_DAYS)
    found = [a for a in (facts.latest_nps, facts.latest_csat) if a is not None and a.at >= since]
    if not found:
        return None
    return max(found, key=lambda a: (a.at, a.kind == "nps"))


def feedback_part(answer: Answer | None) -> Part:
    if answer is None:
        return Part(
            "Feedback",
            "no recent answer",
            FEEDBACK_POINTS // 2,
            FEEDBACK_POINTS,
            f"No NPS or CSAT answer in the last {FEEDBACK_DAYS} days: counted as neutral.",
        )
    if answer.kind == "nps":
        points = round(FEEDBACK_POINTS * answer.score / 10)
        scale = "0-10"
    else:
        points = round(FEEDBACK_POINTS * (answer.score - 1) / 4)
        scale = "1-5"
    return Part(
        "Feedback",
        f"{answer.kind.upper()} {answer.score}",
        points,
        FEEDBACK_POINTS,
        f"Latest answer: {answer.score} on {scale}, given {answer.at:%Y-%m-%d}.",
    )


def open_part(open_tickets: int) -> Part:
    points = max(0, OPEN_POINTS - 5 * open_tickets)
    text = (
        "No ticket open."
        if open_tickets == 0
        else f"{open_tickets} ticket{'s' if open_tickets != 1 else ''} still open: "
        "5 points off each."
    )
    return Part("Open tickets", f"{open_tickets} open", points, OPEN_POINTS, text)


def reopen_part(reopens: int) -> Part:
    points = REOPEN_POINTS if reopens == 0 else REOPEN_POINTS // 2 if reopens == 1 else 0
    if reopens == 0:
        text = f"No solved ticket came back in the last {REOPEN_DAYS} days."
    else:
        text = (
            f"{reopens} solved ticket{'s' if reopens != 1 else ''} reopened "
            f"in the last {REOPEN_DAYS} days."
        )
    return Part("Reopens", f"{reopens} reopened", points, REOPEN_POINTS, text)


def _hours(value: float) -> str:
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


def wait_part(waits: Sequence[float]) -> Part:
    latest = list(waits)[:WAIT_TICKETS]
    if not latest:
        return Part(
            "Waiting", "none", WAIT_POINTS, WAIT_POINTS, "No ticket has waited for a reply."
        )
    median = statistics.median(latest)
    points = next((p for limit, p in WAIT_STEPS if median <= limit), 0)
    return Part(
        "Waiting",
        _hours(median),
        points,
        WAIT_POINTS,
        f"Median wait for a first reply over the last {len(latest)} "
        f"ticket{'s' if len(latest) != 1 else ''}.",
    )


def kind_of(answer: Answer) -> str:
    """promoter, passive or detractor, by one answer."""
    if answer.kind == "nps":
        return "promoter" if answer.score >= 9 else "passive" if answer.score >= 7 else "detractor"
    return "promoter" if answer.score >= 5 else "passive" if answer.score >= 3 else "detractor"


def segment_of(score: int | None, answer: Answer | None, open_tickets: int) -> str:
    """The loyalty segment (the rules are in the module's docstring)."""
    sentiment = kind_of(answer) if answer is not None else None
    if score is not None and score < AT_RISK_BELOW:
        return "at_risk"
    if sentiment == "detractor" and open_tickets > 0:
        return "at_risk"
    return sentiment or "unknown"


def health(facts: Facts) -> Health:
    """The score, its parts and the segment. No ticket and no answer ever: no score."""
    answer = recent_feedback(facts)
    if facts.tickets == 0 and facts.latest_nps is None and facts.latest_csat is None:
        return Health(score=None, parts=[], segment="unknown", feedback=None)
    parts = [
        feedback_part(answer),
        open_part(facts.open_tickets),
        reopen_part(facts.reopens),
        wait_part(facts.waits),
    ]
    score = sum(p.points for p in parts)
    return Health(
        score=score,
        parts=parts,
        segment=segment_of(score, answer, facts.open_tickets),
        feedback=answer,
    )
