"""Surveys hear of solved tickets: each solve schedules the surveys whose rules match."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.kit.errors import NotFound
from servicecycle.surveys import service
from servicecycle.tickets import service as tickets


@subscribe("status.changed")
async def schedule_on_solve(session: AsyncSession, event: Event) -> None:
    """A ticket became solved: schedule its invitations (due after each rule's delay)."""
    if event.data.get("to") != "solved" or event.subject_type != "ticket":
        return
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except (NotFound, ValueError):
        return
    await service.schedule_for_ticket(session, ticket, at=ticket.solved_at or event.occurred_at)


@batch_twin(schedule_on_solve)
async def schedule_on_solve_many(session: AsyncSession, events: list[Appended]) -> None:
    solved = []
    for event in events:
        if event.data.get("to") != "solved" or event.subject_type != "ticket":
            continue
        try:
            ticket = await tickets.get_ticket(session, int(event.subject_id))
        except (NotFound, ValueError):
            continue
        solved.append((ticket, ticket.solved_at or event.occurred_at))
    await service.schedule_for_tickets(session, solved)
