"""A customer's profile, computed on read: lifetime history, health score and segment.

Reads go through the other domains' services (customers, tickets, surveys, follow-ups);
one count has no service read yet and is done here: reopened tickets (``status.changed``
events from solved or closed, read from the event log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.models import Event
from servicecycle.followups import service as followups
from servicecycle.kit import clock
from servicecycle.profiles import health
from servicecycle.surveys import service as surveys
from servicecycle.surveys.models import SurveyResponse  # the type of an answer
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

OPEN = ("new", "open", "pending", "on-hold")
DONE = ("solved", "closed")
LATEST_ANSWERS = 5


@dataclass(frozen=True)
class History:
    tickets_total: int = 0
    tickets_open: int = 0
    tickets_solved: int = 0  # solved or closed
    surveys_answered: int = 0
    latest_answers: list[SurveyResponse] = field(default_factory=list)
    follow_ups_open: int = 0
    follow_ups_done: int = 0
    first_contact_at: datetime | None = None


@dataclass(frozen=True)
class Profile:
    customer: Customer
    score: int | None
    segment: str
    parts: list[health.Part]
    feedback: health.Answer | None
    history: History
    computed_at: datetime

    @property
    def empty(self) -> bool:
        """Nothing known yet: no ticket, no answer, no follow-up."""
        h = self.history
        return (
            h.tickets_total == 0
            and h.surveys_answered == 0
            and h.follow_ups_open == 0 == (h.follow_ups_done)
        )


def wait_hours(ticket: Ticket, now: datetime) -> float | None:
    """Hours the ticket waited for a first reply; so far, if open and still waiting; None
    for a ticket solved without any reply."""
    if ticket.first_reply_at is not None:
        return max(0.0, (ticket.first_reply_at - ticket.created_at).total_seconds() / 3600)
    if ticket.status in OPEN:
        return max(0.0, (now - ticket.created_at).total_seconds() / 3600)
    return None


async def count_reopens(session: AsyncSession, ticket_ids: list[int], *, since: datetime) -> int:
    """Tickets moved from solved or closed back to an open status since ``since``."""
    if not ticket_ids:
        return 0
    stmt = select(func.count()).where(
        Event.kind == "status.changed",
        Event.subject_type == "ticket",
        Event.subject_id.in_([str(i) for i in ticket_ids]),
        Event.occurred_at >= since,
        Event.data["from"].astext.in_(DONE),
        Event.data["to"].astext.in_(OPEN),
    )
    return int(await session.scalar(stmt) or 0)


def _latest(answers: list[SurveyResponse], kind: str) -> health.Answer | None:
    found = [a for a in answers if a.kind == kind]
    if not found:
        return None
    newest = max(found, key=lambda a: (a.answered_at, a.id))
    return health.Answer(kind, newest.score, newest.answered_at)


async def profile(session: AsyncSession, customer_id: int) -> Profile:
    """The customer's profile now (404 for an unknown customer)."""
    customer = await customers.get_customer(session, customer_id)
    now = clock.now()
    theirs = await tickets.tickets_of_customer(session, customer_id)  # newest first
    answers = await surveys.list_responses(
        session, surveys.ResponseFilter(customer_id=customer_id), limit=200
    )
    follow_ups = await followups.states_of_customer(session, customer_id)
    open_count = sum(1 for t in theirs if t.status in OPEN)
    waits = [w for w in (wait_hours(t, now) for t in theirs) if w is not None]
    facts = health.Facts(
        now=now,
        latest_nps=_latest(answers, "nps"),
        latest_csat=_latest(answers, "csat"),
        open_tickets=open_count,
        reopens=await count_reopens(
            session, [t.id for t in theirs], since=now - timedelta(days=health.REOPEN_DAYS)
        ),
        waits=waits,
        tickets=len(theirs),
    )
    found = health.health(facts)
    history = History(
        tickets_total=len(theirs),
        tickets_open=open_count,
        tickets_solved=sum(1 for t in theirs if t.status in DONE),
        surveys_answered=(
            await surveys.count_responses(session, customer_id=customer_id) if answers else 0
        ),
        latest_answers=sorted(answers, key=lambda a: (a.answered_at, a.id), reverse=True)[
            :LATEST_ANSWERS
        ],
        follow_ups_open=follow_ups.get("open", 0),
        follow_ups_done=follow_ups.get("done", 0),
        first_contact_at=min((t.created_at for t in theirs), default=None),
    )
    return Profile(
        customer=customer,
        score=found.score,
        segment=found.segment,
        parts=found.parts,
        feedback=found.feedback,
        history=history,
        computed_at=now,
    )
