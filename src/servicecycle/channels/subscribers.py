"""E-mail follows the ticket: acknowledgements for new requests, agents' replies by mail."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email import outbox
from servicecycle.config import get_settings
from servicecycle.events.bus import subscribe
from servicecycle.events.models import Event
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import service as tickets

ACKNOWLEDGED_CHANNELS = ("email", "web", "portal")
# What each channel promises until the SLA policy's real target is stated (service standards).
PROMISE = {
    "email": "within one business day",
    "web": "within one business day",
    "portal": "within one business day",
}


@subscribe("ticket.created")
async def acknowledge(session: AsyncSession, event: Event) -> None:
    """Tell the customer we have their request, its number, and by when we answer."""
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except (NotFound, ValueError):
        return
    if ticket.channel not in ACKNOWLEDGED_CHANNELS:
        return
    first = (await tickets.thread(session, ticket))[:1]
    if not first or first[0].author_type != "customer":
        return
    body = (
        f"Thank you for contacting us. Your request has the number #{ticket.id}: "
        f"“{ticket.subject}”.\n\nWe will reply {PROMISE[ticket.channel]}. To add anything, "
        "simply reply to this e-mail."
    )
    await outbox.queue(
        session, ticket, kind="acknowledgement", body=body, sender=get_settings().mail_from
    )


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
