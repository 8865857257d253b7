"""Follow-ups hear of unhappy survey answers (``survey.answered``, from surveys) and of
automations asking for a follow-up (``follow_up.requested``), in the recording transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.events.service import Actor, record
from servicecycle.followups import service
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError
from servicecycle.tickets import service as tickets

RECOVERY = Actor.system("follow-ups")


def _summary(data: dict[str, object]) -> str:
    kind = str(data.get("kind") or "survey").upper()
    return f"{kind} {data.get('score')}"


@subscribe("survey.answered")
async def recover_detractor(session: AsyncSession, event: Event) -> None:
    """An NPS of 0-6 or a CSAT of 1-2 (surveys decides: ``detractor``) opens a recovery for
    the ticket's owner. A later, happier score leaves it open and notes the change."""
    if event.subject_type != "ticket" or not event.subject_id.isdigit():
        return
    data = event.data
    response_id = data.get("response_id")
    if response_id is None:
        return
    if data.get("detractor"):
        agent_id = data.get("agent_id")
        await service.open_recovery(
            session,
            ticket_id=int(event.subject_id),
            response_id=str(response_id),
            agent_id=agent_id if isinstance(agent_id, int) else None,
            answered_at=event.occurred_at,
            summary=_summary(data),
            actor=RECOVERY,
        )
        return
    existing = await service.by_source(session, "survey_response", str(response_id))
    if existing is not None and existing.state == "open":
        await service.note(
            session,
            existing,
            text=f"The customer changed their answer to {_summary(data)} (no longer unhappy)",
            actor=RECOVERY,
        )


@batch_twin(recover_detractor)
async def recover_detractors(session: AsyncSession, events: list[Appended]) -> None:
    """``recover_detractor`` for answers about different tickets, in a few statements."""
    answers = []
    for event in events:
        if event.subject_type != "ticket" or not event.subject_id.isdigit():
            continue
        data = event.data
        response_id = data.get("response_id")
        if response_id is None:
            continue
        agent_id = data.get("agent_id")
        answers.append(
            service.Answered(
                ticket_id=int(event.subject_id),
                response_id=str(response_id),
                agent_id=agent_id if isinstance(agent_id, int) else None,
                at=event.occurred_at,
                summary=_summary(data),
                detractor=bool(data.get("detractor")),
            )
        )
    await service.hear_answers(session, answers, actor=RECOVERY)


@subscribe("follow_up.requested")
async def requested(session: AsyncSession, event: Event) -> None:
    """An automation asks for a follow-up on a ticket: ``data`` holds ``reason``,
    ``due_in_hours`` and ``owner`` (``"assignee"``, a user id, or none); the rule's actor
    becomes the creator. A refused request (a deactivated owner) is recorded, not raised."""
    if event.subject_type != "ticket" or not event.subject_id.isdigit():
        return
    data = event.data
    actor = Actor(event.actor_type, event.actor_id)
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
        owner = data.get("owner")
        owner_id = ticket.assignee_id if owner == "assignee" else owner
        hours = data.get("due_in_hours")
        hours = float(hours) if isinstance(hours, int | float) and hours > 0 else 24.0
        await service.create(
            session,
            ticket_id=ticket.id,
            owner_id=owner_id if isinstance(owner_id, int) else None,
            kind=str(data.get("kind") or "check_in"),
            reason=str(data.get("reason") or ""),
            due_at=clock.now() + timedelta(hours=hours),
            actor=actor,
        )
    except ServiceError as exc:
        await record(
            session,
            "follow_up.refused",
            subject_type="ticket",
            subject_id=event.subject_id,
            actor=actor,
            data={"reason": exc.message, "fields": exc.fields},
        )
