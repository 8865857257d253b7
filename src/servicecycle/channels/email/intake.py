"""Mail in: one raw mail to a new ticket, a reply on its ticket, or a recorded refusal.

Threading looks, in order, at the Message-IDs the mail answers, then a ticket number in the
subject or reply address. It never attaches a mail to the wrong ticket: if the sender is
not one of the ticket's participants (its requester's addresses, or someone who wrote to it
before), a new ticket is opened and linked to that one instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email.parse import ParsedMail, Unreadable, parse
from servicecycle.channels.models import InboundMail, MailThread
from servicecycle.customers import service as customers
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError
from servicecycle.tickets import attachments, merging
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.storage import Storage

MAILER = Actor.system("email")
MAX_MAIL_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    outcome: str  # ticket | reply | duplicate | ignored | rejected
    ticket_id: int | None
    reason: str | None = None


async def receive(
    session: AsyncSession,
    raw: bytes,
    *,
    storage: Storage,
    max_file_bytes: int,
    mailbox_id: int | None = None,
) -> Outcome:
    """Store what ``raw`` means for the desk, exactly once per Message-ID (``mailbox_id``:
    the IMAP mailbox it was taken from, noted on its ``inbound_mails`` row)."""
    arrived = clock.now()  # before anything it causes (its acknowledgement), for threading
    if len(raw) > MAX_MAIL_BYTES:
        return await _log(
            session,
            None,
            outcome="rejected",
            size=len(raw),
            at=arrived,
            mailbox_id=mailbox_id,
            reason=f"mail larger than {MAX_MAIL_BYTES:,} bytes",
        )
    try:
        mail = parse(raw)
    except Unreadable as exc:
        return await _log(
            session,
            None,
            outcome="rejected",
            size=len(raw),
            at=arrived,
            mailbox_id=mailbox_id,
            reason=str(exc),
        )
    if mail.message_id:
        seen = await session.scalar(
            select(InboundMail).where(InboundMail.message_id == mail.message_id)
        )
        if seen is not None:
            return Outcome("duplicate", seen.ticket_id, "this Message-ID was received before")
    ticket = await _thread(session, mail)
    stranger = ticket is not None and not await _participant(session, ticket, mail.sender)
    if mail.automatic is not None and (ticket is None or stranger):
        # a robot's mail never opens a ticket (nor is answered): a bounce of our own mail
        # from a MAILER-DAEMON would otherwise become a new ticket, acknowledged to it
        return await _log(
            session,
            mail,
            outcome="ignored",
            size=len(raw),
            at=arrived,
            mailbox_id=mailbox_id,
            reason=mail.automatic,
            ticket=ticket if stranger else None,
        )
    customer = await customers.find_or_create_by_email(
        session, email=mail.sender, name=mail.sender_name, actor=MAILER
    )
    body_text = mail.text if mail.html is None else None
    linked_to: Ticket | None = None
    if ticket is not None and stranger:
        linked_to, ticket = ticket, None
    if ticket is not None and ticket.status != "closed":
        message = await tickets.add_message(
            session,
            ticket,
            public=True,
            author_type="customer",
            author_customer_id=customer.id,
            body_text=body_text or (None if mail.html else "(empty message)"),
            body_html=mail.html,
            channel="email",
            actor=Actor("customer", str(customer.id)),
        )
        await _files(session, mail, message.id, storage, max_file_bytes)
        return await _log(
            session,
            mail,
            outcome="reply",
            size=len(raw),
            at=arrived,
            mailbox_id=mailbox_id,
            ticket=ticket,
            message_id=message.id,
        )
    follow_up_of = ticket  # a reply to a closed ticket opens a new one, linked
    new, first = await tickets.create_ticket(
        session,
        subject=mail.subject,
        requester=customer,
        channel="email",
        body_text=body_text or (None if mail.html else "(empty message)"),
        body_html=mail.html,
        actor=Actor("customer", str(customer.id)),
    )
    await _files(session, mail, first.id, storage, max_file_bytes)
    for other in (linked_to, follow_up_of):
        if other is not None:
            await merging.link(session, new, other, actor=MAILER)
    reason = None
    if linked_to is not None:
        reason = (
            f"sender is not a participant of ticket #{linked_to.id}; opened a new linked ticket"
        )
    return await _log(
        session,
        mail,
        outcome="ticket",
        size=len(raw),
        at=arrived,
        mailbox_id=mailbox_id,
        ticket=new,
        message_id=first.id,
        reason=reason,
    )


async def _thread(session: AsyncSession, mail: ParsedMail) -> Ticket | None:
    for message_id in mail.thread_ids:
        ticket_id = await session.scalar(
            select(MailThread.ticket_id).where(MailThread.message_id == message_id)
        )
        if ticket_id is not None:
            return await _live(session, ticket_id)
    hint = mail.ticket_hint()
    return await _live(session, hint) if hint is not None else None


async def _live(session: AsyncSession, ticket_id: int) -> Ticket | None:
    try:
        ticket = await tickets.get_ticket(session, ticket_id)
    except NotFound:
        return None
    while ticket.merged_into_id is not None:  # follow merges to the ticket that lives on
        ticket = await tickets.get_ticket(session, ticket.merged_into_id)
    return ticket


async def _participant(session: AsyncSession, ticket: Ticket, sender: str) -> bool:
    known = await customers.identities_of(session, [ticket.requester_id])
    if any(i.kind == "email" and i.value == sender for i in known[ticket.requester_id]):
        return True
    wrote_before = await session.scalar(
        select(InboundMail.id)
        .where(
            InboundMail.ticket_id == ticket.id,
            InboundMail.sender == sender,
            InboundMail.outcome.in_(("ticket", "reply")),
        )
        .limit(1)
    )
    return wrote_before is not None


async def _files(
    session: AsyncSession, mail: ParsedMail, message_id: int, storage: Storage, max_bytes: int
) -> None:
    """Keep the mail's files on its message; one the desk refuses is noted, not fatal."""
    message = await tickets.get_message(session, message_id)
    for part in mail.attachments:
        try:
            async with session.begin_nested():
                upload = await attachments.upload(
                    session,
                    storage,
                    filename=part.filename,
                    content_type=part.content_type,
                    data=part.data,
                    max_bytes=max_bytes,
                    user_id=None,
                    actor=MAILER,
                    inline=part.inline,
                    content_id=part.content_id,
                )
                await attachments.attach(session, message, [upload.id], user_id=None, actor=MAILER)
        except ServiceError as exc:
            await record(
                session,
                "attachment.refused",
                subject_type="ticket",
                subject_id=message.ticket_id,
                actor=MAILER,
                data={"filename": part.filename, "reason": exc.message},
            )


async def _log(
    session: AsyncSession,
    mail: ParsedMail | None,
    *,
    outcome: str,
    size: int,
    at: datetime,
    mailbox_id: int | None = None,
    reason: str | None = None,
    ticket: Ticket | None = None,
    message_id: int | None = None,
) -> Outcome:
    row = InboundMail(
        message_id=(mail.message_id or None) if mail else None,
        sender=mail.sender if mail else None,
        subject=(mail.subject if mail else "")[:300],
        outcome=outcome,
        reason=reason,
        ticket_id=ticket.id if ticket else None,
        message_row_id=message_id,
        size=size,
        received_at=at,
        mailbox_id=mailbox_id,
    )
    session.add(row)
    await session.flush()
    if ticket is not None and mail is not None and mail.message_id:
        await session.execute(
            insert(MailThread)
            .values(message_id=mail.message_id, ticket_id=ticket.id)
            .on_conflict_do_nothing()
        )
    await record(
        session,
        f"mail.{outcome}",
        subject_type="inbound_mail",
        subject_id=row.id,
        actor=MAILER,
        data={
            "sender": row.sender,
            "ticket_id": row.ticket_id,
            "reason": reason,
            "problems": list(mail.problems) if mail else [],
        },
    )
    return Outcome(outcome, row.ticket_id, reason)
