"""Chat lines from anywhere reach the chat; replies a visitor can no longer see go by mail.

An agent may answer a chat ticket from the normal ticket page: its ``message.added`` rings
the chat's doorbell like a line typed in the chat. When the chat was missed or has ended,
public agent replies are mailed (the channel stays ``chat``; the e-mail channel's own
subscriber only mails ``email`` tickets), and a missed chat with an address is acknowledged.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email import outbox
from servicecycle.chat import service
from servicecycle.config import get_settings
from servicecycle.events.bus import Appended, batch_twin, subscribe
from servicecycle.events.models import Event
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

OFFLINE_STATES = ("missed", "ended")


@subscribe("message.added")
async def ring(session: AsyncSession, event: Event) -> None:
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except (NotFound, ValueError):
        return
    if ticket.channel != "chat":
        return
    await service.notify(session, ticket.id, "line")
    if not event.data.get("public") or event.data.get("author_type") != "agent":
        return
    chat = await service.chat_of_ticket(session, ticket.id)
    if chat is None or chat.state not in OFFLINE_STATES:
        return
    try:
        message = await tickets.get_message(session, int(event.data["message_id"]))
    except (NotFound, ValueError, KeyError):
        return
    await outbox.queue(
        session,
        ticket,
        kind="reply",
        body=message.body_text,
        message=message,
        sender=get_settings().mail_from,
    )


@batch_twin(ring)
async def ring_many(session: AsyncSession, events: list[Appended]) -> None:
    """``ring`` for each event: one doorbell statement for every chat ticket's line, one
    query for the chats of agents' public replies, their mails queued together."""
    chats: list[tuple[Ticket, Appended]] = []
    for event in events:
        try:
            ticket = await tickets.get_ticket(session, int(event.subject_id))
        except (NotFound, ValueError):
            continue
        if ticket.channel == "chat":
            chats.append((ticket, event))
    await service.notify_many(session, [ticket.id for ticket, _ in chats], "line")
    replies = [
        (ticket, event)
        for ticket, event in chats
        if event.data.get("public") and event.data.get("author_type") == "agent"
    ]
    found = await service.chats_of_tickets(session, [ticket.id for ticket, _ in replies])
    mails = []
    for ticket, event in replies:
        chat = found.get(ticket.id)
        if chat is None or chat.state not in OFFLINE_STATES:
            continue
        try:
            message = await tickets.get_message(session, int(event.data["message_id"]))
        except (NotFound, ValueError, KeyError):
            continue
        mails.append(
            outbox.Mail.reply(
                ticket, message, sender=get_settings().mail_from, at=event.occurred_at
            )
        )
    await outbox.queue_many(session, mails)


@subscribe("chat.missed")
async def acknowledge(session: AsyncSession, event: Event) -> None:
    """Nobody answered live: tell the visitor (if we have their address) we answer by mail."""
    try:
        ticket = await tickets.get_ticket(session, int(event.subject_id))
    except (NotFound, ValueError):
        return
    said = [m.body_text for m in await tickets.thread(session, ticket, public_only=True)]
    body = (
        f"Thank you for your message in our chat. Nobody could answer it live, so we will "
        f"reply by e-mail. Your request has the number #{ticket.id}.\n\nWhat you wrote:\n\n"
        + "\n\n".join(f"> {line}" for line in said)
        + "\n\nTo add anything, simply reply to this e-mail."
    )
    await outbox.queue(
        session, ticket, kind="acknowledgement", body=body, sender=get_settings().mail_from
    )
