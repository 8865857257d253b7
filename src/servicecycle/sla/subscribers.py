"""Keep every ticket's SLA clocks in step with what happens to it (same transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.events.service import NewEvent, record, record_many
from servicecycle.kit.errors import NotFound
from servicecycle.sla import batch
from servicecycle.sla import service as sla
from servicecycle.sla.models import SlaClock, SlaPolicy
from servicecycle.sla.rules import TicketFacts
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

REPLY_METRICS = ("first_reply", "next_reply")
PERIODIC = "periodic_update"


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
    """The policy of the newest live clock (a clock the policy change stopped keeps the old
    policy), else of the newest clock."""
    for row in [*reversed(_live(clocks)), *reversed(clocks)]:
        if row.policy_id is not None:
            return await sla.policy_of(session, row.policy_id)
    return None


async def _clocks(session: AsyncSession, ticket_id: int) -> list[SlaClock]:
    """The ticket's clocks; none, without asking the database, for a ticket this
    transaction created and started no clock for."""
    if tickets.created_here(session, ticket_id) and not sla.started_here(session, ticket_id):
        return []
    return await sla.clocks_of(session, ticket_id)


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
    if ticket is None or await _clocks(session, ticket.id):
        # already timed: a rule or routing acting on this very creation started the clocks
        return
    policy = await sla.choose_policy(session, await _facts(session, ticket))
    if policy is None:
        return
    await _start_all(session, ticket, policy, at=event.occurred_at, fresh=True)


def _wanted(ticket: Ticket, policy: SlaPolicy) -> list[str]:
    """The targets of ``policy`` that should be timing this open ticket now. The next reply
    is not among them: it starts with a customer's message. Periodic updates run from one
    public agent reply to the next, so they start with the first reply, or at once when the
    policy has no first-reply target (or the ticket already has its first reply)."""
    metrics = ["resolution"]
    if ticket.first_reply_at is None:
        metrics.insert(0, "first_reply")
    if ticket.first_reply_at is not None or "first_reply" not in policy.targets:
        metrics.append(PERIODIC)
    return [metric for metric in metrics if metric in policy.targets]


async def _start_all(
    session: AsyncSession, ticket: Ticket, policy: SlaPolicy, *, at: datetime, fresh: bool = False
) -> None:
    """Start the policy's wanted clocks; ``fresh``: the ticket has no clocks at all yet."""
    rows = await _start_missing(session, ticket, policy, [], at=at)
    if fresh:
        sla.note_fresh(session, ticket.id, rows)
    await record(
        session,
        "sla.policy_applied",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=sla.SYSTEM,
        data={"policy_id": policy.id, "policy": policy.name, "started": [r.metric for r in rows]},
    )


async def _start_missing(
    session: AsyncSession,
    ticket: Ticket,
    policy: SlaPolicy,
    live: list[SlaClock],
    *,
    at: datetime,
) -> list[SlaClock]:
    """Start the wanted targets that have no live clock (in one statement)."""
    paused = ticket.status in policy.pause_statuses
    running = {row.metric for row in live}
    wanted = [metric for metric in _wanted(ticket, policy) if metric not in running]
    return await sla.start_many(session, ticket.id, policy, wanted, at=at, paused=paused)


@subscribe("message.added")
async def on_message(session: AsyncSession, event: Event) -> None:
    if not event.data.get("public") or event.subject_type != "ticket":
        return
    ticket_id = int(event.subject_id)
    clocks = await _clocks(session, ticket_id)
    live = _live(clocks)
    at = event.occurred_at
    policy = await _current_policy(session, clocks)
    if event.data.get("author_type") == "agent":
        for row in live:
            if row.metric in REPLY_METRICS or row.metric == PERIODIC:
                await sla.stop(session, row, at=at)
        # the next periodic update is owed from this reply on (its status change, if any,
        # follows this event and pauses or drops it)
        ticket = await _ticket(session, event)
        if (
            policy is not None
            and PERIODIC in policy.targets
            and ticket is not None
            and ticket.status not in ("solved", "closed")
        ):
            paused = ticket.status in policy.pause_statuses
            await sla.start(session, ticket_id, policy, PERIODIC, at=at, paused=paused)
    elif event.data.get("author_type") == "customer":
        waiting = any(row.metric in REPLY_METRICS for row in live)
        if not waiting and policy is not None:
            await sla.start(session, ticket_id, policy, "next_reply", at=at)


@subscribe("status.changed")
async def on_status(session: AsyncSession, event: Event) -> None:
    if event.subject_type != "ticket":
        return
    ticket_id = int(event.subject_id)
    clocks = await sla.clocks_of(session, ticket_id)
    policy = await _current_policy(session, clocks)
    before, after, at = event.data.get("from"), event.data.get("to"), event.occurred_at
    if policy is None:
        if before == "solved" and after != "closed" and (ticket := await _ticket(session, event)):
            await rechoose(session, ticket, at=at)  # its policy was deleted since: choose anew
        return
    live = _live(clocks)
    if after in ("solved", "closed"):
        for row in live:
            if row.metric == PERIODIC and row.started_at == at and row.used_minutes == 0:
                # armed by the very reply that solves the ticket: it never ran
                sla.forget_clock(session, row)
                await session.delete(row)
                continue
            await sla.stop(session, row, at=at, met=row.metric == "resolution")
        await session.flush()
    elif after in policy.pause_statuses:
        for row in live:
            await sla.pause(session, row, at=at)
    elif before in policy.pause_statuses:
        for row in live:
            await sla.resume(session, row, at=at)
    if before == "solved" and after not in ("closed",):
        paused = after in policy.pause_statuses
        running = {row.metric for row in live}
        # reopened: resolution again; periodic updates too when no next-reply target
        # covers the wait for an answer
        metrics = ["resolution"] + ([PERIODIC] if "next_reply" not in policy.targets else [])
        for metric in metrics:
            if metric not in running:
                await sla.start(session, ticket_id, policy, metric, at=at, paused=paused)


@subscribe("ticket.updated", "assigned", "ticket.requester_changed")
async def on_fields(session: AsyncSession, event: Event) -> None:
    """A change of priority, tags, team or requester may select another policy."""
    ticket = await _ticket(session, event)
    if ticket is not None:
        await rechoose(session, ticket, at=event.occurred_at)


@subscribe("customer.updated")
async def on_customer(session: AsyncSession, event: Event) -> None:
    """A customer's new tier may select another policy for each of their open tickets."""
    if "tier" not in event.data.get("changes", {}) or not event.subject_id.isdigit():
        return
    open_tickets = await session.scalars(
        select(Ticket)
        .where(
            Ticket.requester_id == int(event.subject_id),
            Ticket.status.not_in(("solved", "closed")),
        )
        .order_by(Ticket.id)
    )
    for ticket in open_tickets.all():
        await rechoose(session, ticket, at=event.occurred_at)


async def rechoose(session: AsyncSession, ticket: Ticket, *, at: datetime) -> None:
    """Choose the ticket's policy again; if another one comes first now, move the live
    clocks to it (keeping the time used), stop those it has no target for, start those it
    adds, and record ``sla.policy_changed``."""
    if ticket.status in ("solved", "closed"):
        return
    clocks = await sla.clocks_of(session, ticket.id)
    current = await _current_policy(session, clocks)
    chosen = await sla.choose_policy(session, await _facts(session, ticket))
    if chosen is None or (current is not None and chosen.id == current.id):
        return
    live = _live(clocks)
    if current is None or not live:
        await _start_all(session, ticket, chosen, at=at)
        return
    for row in live:
        await sla.retarget(session, row, chosen, at=at)
    started = [r.metric for r in await _start_missing(session, ticket, chosen, _live(live), at=at)]
    await record(
        session,
        "sla.policy_changed",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=sla.SYSTEM,
        data={"from": current.id, "to": chosen.id, "policy": chosen.name, "started": started},
    )


# -- batch twins: the same clocks and events for a run of events about different tickets ---


async def _clocks_many(session: AsyncSession, ticket_ids: list[int]) -> dict[int, list[SlaClock]]:
    """``_clocks`` for each ticket, in one query for those it must ask about."""
    none = [
        i
        for i in ticket_ids
        if tickets.created_here(session, i) and not sla.started_here(session, i)
    ]
    found = await batch.clocks_of_tickets(session, [i for i in ticket_ids if i not in none])
    return {**found, **{i: [] for i in none}}


def _ticket_ids(events: list[Appended]) -> list[int]:
    return [
        int(e.subject_id) for e in events if e.subject_type == "ticket" and e.subject_id.isdigit()
    ]


@batch_twin(on_created)
async def on_created_many(session: AsyncSession, events: list[Appended]) -> None:
    clocks = await _clocks_many(session, _ticket_ids(events))
    starts: list[batch.Start] = []
    for event in events:
        ticket = await _ticket(session, event)  # type: ignore[arg-type]
        if ticket is None or clocks.get(ticket.id):
            continue
        policy = await sla.choose_policy(session, await _facts(session, ticket))
        if policy is None:
            continue
        paused = ticket.status in policy.pause_statuses
        starts.append((ticket.id, policy, _wanted(ticket, policy), event.occurred_at, paused))
    made = await batch.start_for(session, starts)
    for ticket_id, _, _, _, _ in starts:
        sla.note_fresh(session, ticket_id, made.get(ticket_id, []))
    await record_many(
        session,
        [
            NewEvent(
                "sla.policy_applied",
                "ticket",
                ticket_id,
                sla.SYSTEM,
                at,
                {
                    "policy_id": policy.id,
                    "policy": policy.name,
                    "started": [r.metric for r in made.get(ticket_id, [])],
                },
            )
            for ticket_id, policy, _, at, _ in starts
        ],
    )


@batch_twin(on_message)
async def on_message_many(session: AsyncSession, events: list[Appended]) -> None:
    public = [e for e in events if e.data.get("public") and e.subject_type == "ticket"]
    clocks = await _clocks_many(session, _ticket_ids(public))
    stops: list[tuple[SlaClock, datetime, bool]] = []
    starts: list[batch.Start] = []
    for event in public:
        ticket_id, at = int(event.subject_id), event.occurred_at
        live = _live(clocks[ticket_id])
        policy = await _current_policy(session, clocks[ticket_id])
        if event.data.get("author_type") == "agent":
            stops += [(row, at, True) for row in live if row.metric in (*REPLY_METRICS, PERIODIC)]
            ticket = await _ticket(session, event)  # type: ignore[arg-type]
            if (
                policy is not None
                and PERIODIC in policy.targets
                and ticket is not None
                and ticket.status not in ("solved", "closed")
            ):
                paused = ticket.status in policy.pause_statuses
                starts.append((ticket_id, policy, [PERIODIC], at, paused))
        elif event.data.get("author_type") == "customer":
            waiting = any(row.metric in REPLY_METRICS for row in live)
            if not waiting and policy is not None:
                starts.append((ticket_id, policy, ["next_reply"], at, False))
    await batch.stop_many(session, stops)
    await batch.start_for(session, starts)


@batch_twin(on_status)
async def on_status_many(session: AsyncSession, events: list[Appended]) -> None:
    about = [e for e in events if e.subject_type == "ticket"]
    clocks = await batch.clocks_of_tickets(session, _ticket_ids(about))
    stops: list[tuple[SlaClock, datetime, bool]] = []
    held: list[SlaClock] = []  # paused or resumed: written with the stopped ones
    starts: list[batch.Start] = []
    for event in about:
        ticket_id = int(event.subject_id)
        policy = await _current_policy(session, clocks[ticket_id])
        before, after, at = event.data.get("from"), event.data.get("to"), event.occurred_at
        if policy is None:
            await on_status(session, event)  # type: ignore[arg-type]  # rare: chooses anew
            continue
        live = _live(clocks[ticket_id])
        if after in ("solved", "closed"):
            for row in live:
                if row.metric == PERIODIC and row.started_at == at and row.used_minutes == 0:
                    sla.forget_clock(session, row)  # armed by the reply that solves: never ran
                    await session.delete(row)
                    continue
                stops.append((row, at, row.metric == "resolution"))
        elif after in policy.pause_statuses:
            for row in live:
                await sla.pause(session, row, at=at)
            held += live
        elif before in policy.pause_statuses:
            for row in live:
                await sla.resume(session, row, at=at)
            held += live
        if before == "solved" and after not in ("closed",):
            paused = after in policy.pause_statuses
            running = {row.metric for row in live}
            metrics = ["resolution"] + ([PERIODIC] if "next_reply" not in policy.targets else [])
            starts.append((ticket_id, policy, [m for m in metrics if m not in running], at, paused))
    await batch.stop_many(session, stops, also=held)
    await session.flush()
    await batch.start_for(session, starts)


@batch_twin(on_fields)
async def on_fields_many(session: AsyncSession, events: list[Appended]) -> None:
    """``rechoose`` for each ticket; the clocks of all read at once, and only a ticket whose
    policy would change goes through ``rechoose`` itself."""
    clocks = await batch.clocks_of_tickets(session, _ticket_ids(events))
    for event in events:
        ticket = await _ticket(session, event)  # type: ignore[arg-type]
        if ticket is None or ticket.status in ("solved", "closed"):
            continue
        current = await _current_policy(session, clocks[ticket.id])
        chosen = await sla.choose_policy(session, await _facts(session, ticket))
        if chosen is None or (current is not None and chosen.id == current.id):
            continue
        await rechoose(session, ticket, at=event.occurred_at)
