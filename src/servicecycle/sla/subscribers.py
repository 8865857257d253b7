"""Keep every ticket's SLA clocks in step with what happens to it (same transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.events.bus import subscribe
from servicecycle.events.models import Event
from servicecycle.events.service import record
from servicecycle.kit.errors import NotFound
from servicecycle.sla import service as sla
from servicecycle.sla.models import SlaClock, SlaPolicy
from servicecycle.sla.rules import TicketFacts
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

REPLY_METRICS = ("first_reply", "next_reply")


async def _facts(session: AsyncSession, ticket: Ticket) -> TicketFacts:
    customer = await customers.get_customer(session, ticket.requester_id)
    return TicketFacts(
        priority=ticket.priority,
        channel=ticket.channel,
        tier=customer.tier,
        team_id=ticket.team_id,
        tags=tuple(ticket.tags),
    )


def _live(clocks: list[SlaClock]) -> list[SlaClock]:
    return [c for c in clocks if c.stopped_at is None and c.state != "cancelled"]


async def _current_policy(session: AsyncSession, clocks: list[SlaClock]) -> SlaPolicy | None:
    for row in reversed(clocks):
        if row.policy_id is not None:
            return await session.get(SlaPolicy, row.policy_id)
    return None


async def _ticket(session: AsyncSession, event: Event) -> Ticket | None:
    """The event's ticket; None for an event about something else (nothing to time)."""
    if event.subject_type != "ticket" or not event.subject_id.isdigit():
        return None
    try:
        return await tickets.get_ticket(session, int(event.subject_id))
    except NotFound:
        return None


@subscribe("ticket.created")
async def on_created(session: AsyncSession, event: Event) -> None:
    ticket = await _ticket(session, event)
    if ticket is None or await sla.clocks_of(session, ticket.id):
        # already timed: a rule or routing acting on this very creation started the clocks
        return
    policy = await sla.choose_policy(session, await _facts(session, ticket))
    if policy is None:
        return
    await _start_all(session, ticket, policy, at=event.occurred_at)


async def _start_all(
    session: AsyncSession, ticket: Ticket, policy: SlaPolicy, *, at: datetime
) -> None:
    paused = ticket.status in policy.pause_statuses
    metrics = ["resolution"] if ticket.first_reply_at is not None else ["first_reply", "resolution"]
    started = []
    for metric in metrics:
        row = await sla.start(session, ticket.id, policy, metric, at=at, paused=paused)
        if row is not None:
            started.append(metric)
    await record(
        session,
        "sla.policy_applied",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=sla.SYSTEM,
        data={"policy_id": policy.id, "policy": policy.name, "started": started},
    )


@subscribe("message.added")
async def on_message(session: AsyncSession, event: Event) -> None:
    if not event.data.get("public") or event.subject_type != "ticket":
        return
    ticket_id = int(event.subject_id)
    clocks = await sla.clocks_of(session, ticket_id)
    live = _live(clocks)
    at = event.occurred_at
    if event.data.get("author_type") == "agent":
        for row in live:
            if row.metric in REPLY_METRICS:
                await sla.stop(session, row, at=at)
    elif event.data.get("author_type") == "customer":
        waiting = any(row.metric in REPLY_METRICS for row in live)
        policy = await _current_policy(session, clocks)
        if not waiting and policy is not None:
            await sla.start(session, ticket_id, policy, "next_reply", at=at)


@subscribe("status.changed")
async def on_status(session: AsyncSession, event: Event) -> None:
    if event.subject_type != "ticket":
        return
    ticket_id = int(event.subject_id)
    clocks = await sla.clocks_of(session, ticket_id)
    policy = await _current_policy(session, clocks)
    if policy is None:
        return
    before, after, at = event.data.get("from"), event.data.get("to"), event.occurred_at
    live = _live(clocks)
    if after in ("solved", "closed"):
        for row in live:
            await sla.stop(session, row, at=at, met=row.metric == "resolution")
    elif after in policy.pause_statuses:
        for row in live:
            await sla.pause(session, row, at=at)
    elif before in policy.pause_statuses:
        for row in live:
            await sla.resume(session, row, at=at)
    if (
        before == "solved"
        and after not in ("closed",)
        and not any(row.metric == "resolution" for row in live)
    ):
        await sla.start(
            session, ticket_id, policy, "resolution", at=at, paused=after in policy.pause_statuses
        )


@subscribe("ticket.updated", "assigned")
async def on_fields(session: AsyncSession, event: Event) -> None:
    """A change of priority, tags or team may select another policy: re-target live clocks."""
    ticket = await _ticket(session, event)
    if ticket is None or ticket.status in ("solved", "closed"):
        return
    clocks = await sla.clocks_of(session, ticket.id)
    current = await _current_policy(session, clocks)
    chosen = await sla.choose_policy(session, await _facts(session, ticket))
    if chosen is None or (current is not None and chosen.id == current.id):
        return
    at = event.occurred_at
    live = _live(clocks)
    if current is None or not live:
        await _start_all(session, ticket, chosen, at=at)
        return
    for row in live:
        await sla.retarget(session, row, chosen, at=at)
    await record(
        session,
        "sla.policy_changed",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=sla.SYSTEM,
        data={"from": current.id, "to": chosen.id, "policy": chosen.name},
    )
