"""E-mail follows the ticket: acknowledgements for new requests, agents' replies by mail.

The acknowledgement states the real first-reply target: the due time of the ticket's
``first_reply`` SLA clock, in the policy calendar's time zone. This runs on
``ticket.created`` before sla's own subscriber starts the clocks (subscribers run by
package name), so unless a rule already started them, sla says when the first reply would
be due (``sla.first_reply_due``: the policy it will choose, its own calendar arithmetic).
Channels' subscribers thus read sla's service (they sit above it); nothing in sla imports
channels.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email import outbox
from servicecycle.config import get_settings
from servicecycle.customers import service as customers
from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound
from servicecycle.sla import service as sla
from servicecycle.sla.rules import TicketFacts
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

ACKNOWLEDGED_CHANNELS = ("email", "web", "portal")
# What each channel promises when no SLA policy with a first-reply target applies.
PROMISE = {
    "email": "within one business day",
    "web": "within one business day",
    "portal": "within one business day",
}


async def first_reply_due(
    session: AsyncSession, ticket: Ticket, *, at: datetime
) -> tuple[datetime, str] | None:
    """When the first reply is due, and the time zone to say it in; None without a target."""
    # a rule acting on this very creation may have started the clocks already
    if not tickets.created_here(session, ticket.id) or sla.started_here(session, ticket.id):
        for row in await sla.clocks_of(session, ticket.id):
            if row.metric == "first_reply" and row.state == "running" and row.due_at is not None:
                zone = await sla.zone_of(session, await sla.policy_of(session, row.policy_id))
                return row.due_at, zone or get_settings().desk_time_zone
    customer = await customers.get_customer(session, ticket.requester_id)
    facts = TicketFacts(
        priority=ticket.priority,
        channel=ticket.channel,
        tier=customer.tier,
        team_id=ticket.team_id,
        tags=tuple(ticket.tags),
    )
    due = await sla.first_reply_due(session, facts, at=at)
    if due is None:
        return None
    return due[0], due[1] or get_settings().desk_time_zone


def spoken_time(due: datetime, zone: str, *, now: datetime | None = None) -> str:
    """``Tuesday 3 December, 10:00 (London time)``; the year only when it is not this one."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz, zone = ZoneInfo("UTC"), "UTC"
    local = due.astimezone(tz)
    year = "" if local.year == (now or clock.now()).astimezone(tz).year else f" {local.year}"
    if zone in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Universal", "Zulu"):
        label = "UTC"
    else:
        label = f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} time"
    return f"{local:%A} {local.day} {local:%B}{year}, {local:%H:%M} ({label})"


@subscribe("ticket.created")
async def acknowledge(session: AsyncSession, event: Event) -> None:
    """Tell the customer we have their request, its number, and by when we answer."""
    mail = await _acknowledgement(session, event)
    if mail is not None:
        await outbox.queue(
            session,
            mail.ticket,
            kind=mail.kind,
            body=mail.body,
            sender=mail.sender,
            # the expectation set at first contact, for the record (and for analytics)
            note=mail.note,
        )


async def _acknowledgement(session: AsyncSession, event: Event | Appended) -> outbox.Mail | None:
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except (NotFound, ValueError):
        return None
    if ticket.channel not in ACKNOWLEDGED_CHANNELS:
        return None
    first = await tickets.first_message(session, ticket)
    if first is None or first.author_type != "customer":
        return None
    due = await first_reply_due(session, ticket, at=event.occurred_at)
    promise = f"by {spoken_time(*due, now=event.occurred_at)}" if due else PROMISE[ticket.channel]
    body = (
        f"Thank you for contacting us. Your request has the number #{ticket.id}: "
        f"“{ticket.subject}”.\n\nWe will reply {promise}. To add anything, "
        "simply reply to this e-mail."
    )
    return outbox.Mail(
        ticket=ticket,
        kind="acknowledgement",
        body=body,
        sender=get_settings().mail_from,
        at=event.occurred_at,
        note={"promised": promise, "due_at": due[0].isoformat() if due else None},
    )


@batch_twin(acknowledge)
async def acknowledge_many(session: AsyncSession, events: list[Appended]) -> None:
    mails = [m for e in events if (m := await _acknowledgement(session, e)) is not None]
    await outbox.queue_many(session, mails)


@subscribe("message.added")
async def mail_reply(session: AsyncSession, event: Event) -> None:
    """A public reply from an agent on an e-mail ticket goes out by e-mail."""
    if not event.data.get("public") or event.data.get("author_type") != "agent":
        return
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
        message = await tickets.get_message(session, int(event.data["message_id"]))
    except (NotFound, ValueError, KeyError):
        return
    if ticket.channel != "email":
        return
    await outbox.queue(
        session,
        ticket,
        kind="reply",
        body=message.body_text,
        message=message,
        sender=get_settings().mail_from,
    )


@batch_twin(mail_reply)
async def mail_reply_many(session: AsyncSession, events: list[Appended]) -> None:
    mails = []
    for event in events:
        if not event.data.get("public") or event.data.get("author_type") != "agent":
            continue
        try:
            ticket = await tickets.get_ticket(session, int(event.subject_id))
            message = await tickets.get_message(session, int(event.data["message_id"]))
        except (NotFound, ValueError, KeyError):
            continue
        if ticket.channel == "email":
            mails.append(
                outbox.Mail.reply(
                    ticket, message, sender=get_settings().mail_from, at=event.occurred_at
                )
            )
    await outbox.queue_many(session, mails)
