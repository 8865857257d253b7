"""Ratings asked where the customer already is: at the end of a chat, on a portal request.

``offers`` says which questions to show for a ticket (the first enabled survey of each
kind, with the answer already given, if any); ``rate`` records one through
``service.rate_in_place``, which answers the ticket's invitation (a pending mail's too) or
makes one, so a second rating updates the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.kit.errors import Conflict, NotFound, ValidationFailed
from servicecycle.surveys import service
from servicecycle.surveys.models import Survey, SurveyInvitation, SurveyResponse
from servicecycle.tickets.models import Ticket

IN_PLACE_KINDS = ("csat", "nps", "ces")
DONE = ("solved", "closed")
NO_SUCH_REQUEST = "There is no such request."  # the portal's words: nothing revealed


@dataclass(frozen=True)
class Offer:
    """One question to ask about a ticket, and the answer given so far."""

    kind: str
    survey_id: int
    question: str
    why_question: str
    scale_min: int
    scale_max: int
    low_label: str
    high_label: str
    score: int | None
    comment: str

    @property
    def scale(self) -> list[int]:
        return list(range(self.scale_min, self.scale_max + 1))

    def frame(self) -> dict[str, Any]:
        """As sent to the chat widget."""
        return {
            "kind": self.kind,
            "question": self.question,
            "why_question": self.why_question,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "low_label": self.low_label,
            "high_label": self.high_label,
            "score": self.score,
            "comment": self.comment,
        }


async def offers(
    session: AsyncSession, ticket: Ticket, *, kinds: tuple[str, ...] = IN_PLACE_KINDS
) -> list[Offer]:
    """The first enabled survey of each of ``kinds`` (in that order), with the current
    requester's answer on this ticket so far; none for a kind the desk does not use."""
    surveys = list(
        (
            await session.scalars(
                select(Survey).where(Survey.enabled, Survey.kind.in_(kinds)).order_by(Survey.id)
            )
        ).all()
    )
    first: dict[str, Survey] = {}
    for one in surveys:
        first.setdefault(one.kind, one)
    if not first:
        return []
    answered = {
        row.survey_id: row
        for row in (
            await session.scalars(
                select(SurveyResponse)
                .join(SurveyInvitation, SurveyInvitation.id == SurveyResponse.invitation_id)
                .where(
                    SurveyInvitation.ticket_id == ticket.id,
                    SurveyResponse.survey_id.in_([s.id for s in first.values()]),
                    # an earlier requester's answer is theirs, not the current one's
                    SurveyResponse.customer_id == ticket.requester_id,
                )
            )
        ).all()
    }
    found = []
    for kind in kinds:
        survey = first.get(kind)
        if survey is None:
            continue
        low, high = service.DEFAULTS[kind]["labels"]
        given = answered.get(survey.id)
        found.append(
            Offer(
                kind=kind,
                survey_id=survey.id,
                question=survey.question,
                why_question=survey.why_question,
                scale_min=survey.scale_min,
                scale_max=survey.scale_max,
                low_label=low,
                high_label=high,
                score=given.score if given else None,
                comment=given.comment if given else "",
            )
        )
    return found


async def rate(
    session: AsyncSession,
    ticket: Ticket,
    *,
    kind: Any,
    score: Any,
    comment: Any = None,
    source: str,
    kinds: tuple[str, ...] = IN_PLACE_KINDS,
) -> SurveyResponse:
    """Record (or change) the customer's rating of ``ticket``; 422 naming ``kind``,
    ``score`` or ``comment`` when one is wrong, and nothing is stored."""
    if not isinstance(kind, str) or kind not in kinds:
        raise ValidationFailed(
            "Unknown kind of rating", fields={"kind": f"one of {', '.join(kinds)}"}
        )
    if comment is not None and not isinstance(comment, str):
        raise ValidationFailed("The comment must be text", fields={"comment": "must be text"})
    if score is None or score == "":
        raise ValidationFailed("Please choose a score", fields={"score": "required"})
    return await service.rate_in_place(
        session, ticket, kind=kind, score=score, comment=comment, source=source
    )


def check_own_solved(customer_id: int, ticket: Ticket) -> Ticket:
    """A request its own requester may rate in the portal: theirs (a colleague's or anyone
    else's is 404, as if it did not exist) and solved or closed (409 before)."""
    if ticket.requester_id != customer_id:
        raise NotFound(NO_SUCH_REQUEST)
    if ticket.status not in DONE:
        raise Conflict(
            "You can rate a request once it is solved", fields={"ticket": "not solved yet"}
        )
    return ticket


async def portal_offers(session: AsyncSession, customer_id: int, ticket: Ticket) -> list[Offer]:
    """The questions the portal shows under a request: on the customer's own solved
    request, one per kind the desk asks; else none."""
    if ticket.requester_id != customer_id or ticket.status not in DONE:
        return []
    return await offers(session, ticket)
