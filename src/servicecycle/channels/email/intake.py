"""Mail in: one raw mail to a new ticket, a reply on its ticket, or a recorded refusal.

Threading looks, in order, at the Message-IDs the mail answers, then a ticket number in the
subject or reply address. It never attaches a mail to the wrong ticket: if the sender is
not one of the ticket's participants (its requester's addresses, or someone who wrote to it
before), a new ticket is opened and linked to that one instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CompoundSelect, Result, Select, Table, bindparam, literal, select, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email.parse import ParsedMail, Unreadable, parse
from servicecycle.channels.models import InboundMail, MailThread
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError, ValidationFailed
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


@dataclass(frozen=True)
class Entry:
    """What became of one mail, as its ``inbound_mails`` row and ``mail.*`` event tell it."""

    mail: ParsedMail | None
    outcome: str
    size: int
    at: datetime
    mailbox_id: int | None
    reason: str | None = None
    ticket: Ticket | None = None
    message_id: int | None = None


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
    mail = read(raw, at=arrived, mailbox_id=mailbox_id)
    if isinstance(mail, Entry):
        return await log(session, mail)
    found = await lookup(session, [mail])
    if mail.message_id in found.seen:
        return duplicate(found.seen[mail.message_id])
    ticket = await thread_of(session, mail, found.threads)
    entry = await store(
        session,
        mail,
        ticket=ticket,
        known=await sender_of(session, mail.sender),
        size=len(raw),
        at=arrived,
        mailbox_id=mailbox_id,
        storage=storage,
        max_file_bytes=max_file_bytes,
    )
    return await log(session, entry)


def duplicate(ticket_id: int | None) -> Outcome:
    return Outcome("duplicate", ticket_id, "this Message-ID was received before")


def read(raw: bytes, *, at: datetime, mailbox_id: int | None) -> ParsedMail | Entry:
    """The parsed mail, or its refusal (too large, or no sender)."""
    if len(raw) > MAX_MAIL_BYTES:
        reason = f"mail larger than {MAX_MAIL_BYTES:,} bytes"
        return Entry(None, "rejected", len(raw), at, mailbox_id, reason=reason)
    try:
        return parse(raw)
    except Unreadable as exc:
        return Entry(None, "rejected", len(raw), at, mailbox_id, reason=str(exc))


async def store(
    session: AsyncSession,
    mail: ParsedMail,
    *,
    ticket: Ticket | None,
    known: Customer | None,
    size: int,
    at: datetime,
    mailbox_id: int | None,
    storage: Storage,
    max_file_bytes: int,
) -> Entry:
    """Keep a new mail (not a duplicate) that answers ``ticket`` (from ``thread_of``), from
    ``known`` (the sender's customer, if any): a reply, a new ticket, or ignored."""
    stranger = ticket is not None and not await participant(session, ticket, mail.sender, known)
    if mail.automatic is not None and (ticket is None or stranger):
        # a robot's mail never opens a ticket (nor is answered): a bounce of our own mail
        # from a MAILER-DAEMON would otherwise become a new ticket, acknowledged to it
        return Entry(
            mail,
            "ignored",
            size,
            at,
            mailbox_id,
            reason=mail.automatic,
            ticket=ticket if stranger else None,
        )
    customer = known or await customers.find_or_create_by_email(
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
        await files(session, mail, message.id, storage, max_file_bytes)
        return Entry(mail, "reply", size, at, mailbox_id, ticket=ticket, message_id=message.id)
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
    await files(session, mail, first.id, storage, max_file_bytes)
    for other in (linked_to, follow_up_of):
        if other is not None:
            await merging.link(session, new, other, actor=MAILER)
    reason = None
    if linked_to is not None:
        reason = (
            f"sender is not a participant of ticket #{linked_to.id}; opened a new linked ticket"
        )
    return Entry(
        mail, "ticket", size, at, mailbox_id, reason=reason, ticket=new, message_id=first.id
    )


@dataclass(frozen=True)
class Found:
    """What the database knows of some mails' Message-IDs: those received before (with the
    ticket each went to) and the tickets of the Message-IDs they answer."""

    seen: dict[str, int | None]
    threads: dict[str, int]


async def lookup(session: AsyncSession, mails: list[ParsedMail]) -> Found:
    """The duplicate check and the thread lookups of ``mails`` in one query."""
    ids = list(dict.fromkeys(m.message_id for m in mails if m.message_id))
    answers = list(dict.fromkeys(i for m in mails for i in m.thread_ids))
    if not ids and not answers:
        return Found({}, {})
    rows: Result[Any] = await session.execute(_LOOKUP, {"ids": ids, "answers": answers})
    seen: dict[str, int | None] = {}
    threads: dict[str, int] = {}
    for row in rows:
        received, message_id, ticket_id = cast(tuple[bool, str, int | None], tuple(row))
        if received:
            seen[message_id] = ticket_id
        elif ticket_id is not None:
            threads[message_id] = ticket_id
    return Found(seen, threads)


async def thread_of(
    session: AsyncSession, mail: ParsedMail, threads: dict[str, int]
) -> Ticket | None:
    """The live ticket the mail answers: by the nearest Message-ID it answers that the desk
    knows (``threads``, from ``lookup``), else by a ticket number it names."""
    for message_id in mail.thread_ids:
        if message_id in threads:
            return await _live(session, threads[message_id])
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


async def sender_of(session: AsyncSession, sender: str) -> Customer | None:
    try:
        return await customers.find_by_identity(session, "email", sender)
    except ValidationFailed:  # not an address a customer can have (a robot's, say)
        return None


async def participant(
    session: AsyncSession, ticket: Ticket, sender: str, customer: Customer | None
) -> bool:
    """Whether ``sender`` (owned by ``customer``, if anyone) may write to ``ticket``: its
    requester (an e-mail identity belongs to one customer), or someone who wrote to it."""
    if customer is not None and customer.id == ticket.requester_id:
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


async def files(
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


async def log(session: AsyncSession, entry: Entry) -> Outcome:
    """Write one mail's ``inbound_mails`` row, its thread (when it went to a ticket) and its
    ``mail.*`` event: the row and the thread in one statement."""
    row = _row(entry)
    row_id: int = (await session.execute(_LOG_ONE, row)).scalar_one()
    await record(
        session,
        f"mail.{entry.outcome}",
        subject_type="inbound_mail",
        subject_id=row_id,
        actor=MAILER,
        data=_event_data(row, entry.mail),
    )
    return Outcome(entry.outcome, row["ticket_id"], entry.reason)


async def log_many(session: AsyncSession, entries: list[Entry]) -> list[Outcome]:
    """``log`` for each entry (of different Message-IDs): the rows, the threads and the
    events written in one statement each."""
    if len(entries) <= 1:
        return [await log(session, entry) for entry in entries]
    rows = [_row(entry) for entry in entries]
    ids = (await session.execute(_LOG_MANY, rows)).scalars().all()
    threads = [
        {"message_id": row["message_id"], "ticket_id": row["ticket_id"]}
        for row in rows
        if row["message_id"] and row["ticket_id"] is not None
    ]
    if threads:
        await session.execute(insert(_THREADS).values(threads).on_conflict_do_nothing())
    await record_many(
        session,
        [
            NewEvent(
                f"mail.{entry.outcome}",
                "inbound_mail",
                row_id,
                MAILER,
                clock.now(),
                _event_data(row, entry.mail),
            )
            for row_id, row, entry in zip(ids, rows, entries, strict=True)
        ],
    )
    return [
        Outcome(e.outcome, row["ticket_id"], e.reason) for e, row in zip(entries, rows, strict=True)
    ]


_INBOUND = cast(Table, InboundMail.__table__)
_THREADS = cast(Table, MailThread.__table__)
# many rows in one INSERT; their ids come back in the order given
_LOG_MANY = insert(_INBOUND).returning(_INBOUND.c.id, sort_by_parameter_order=True)
_COLUMNS = (
    "message_id",
    "sender",
    "subject",
    "outcome",
    "reason",
    "ticket_id",
    "message_row_id",
    "size",
    "received_at",
    "mailbox_id",
)


def _log_one() -> Select[Any]:
    """One row and its thread (when it went to a ticket) in one statement, built once."""
    written = (
        insert(_INBOUND)
        .values({name: bindparam(name, type_=_INBOUND.c[name].type) for name in _COLUMNS})
        .returning(_INBOUND.c.id, _INBOUND.c.message_id, _INBOUND.c.ticket_id)
        .cte()
    )
    threaded = (
        insert(_THREADS)
        .from_select(
            ["message_id", "ticket_id"],
            select(written.c.message_id, written.c.ticket_id).where(
                written.c.message_id.is_not(None), written.c.ticket_id.is_not(None)
            ),
        )
        .on_conflict_do_nothing()
    )
    return select(written.c.id).add_cte(threaded.cte())


_LOG_ONE = _log_one()
# the duplicate check and the thread lookups, built once
_LOOKUP: CompoundSelect[Any] = union_all(
    select(literal(True), InboundMail.message_id, InboundMail.ticket_id).where(
        InboundMail.message_id.in_(bindparam("ids", expanding=True))
    ),
    select(literal(False), MailThread.message_id, MailThread.ticket_id).where(
        MailThread.message_id.in_(bindparam("answers", expanding=True))
    ),
)


def _row(entry: Entry) -> dict[str, Any]:
    """An ``inbound_mails`` row's values."""
    mail = entry.mail
    return {
        "message_id": (mail.message_id or None) if mail else None,
        "sender": mail.sender if mail else None,
        "subject": (mail.subject if mail else "")[:300],
        "outcome": entry.outcome,
        "reason": entry.reason,
        "ticket_id": entry.ticket.id if entry.ticket else None,
        "message_row_id": entry.message_id,
        "size": entry.size,
        "received_at": entry.at,
        "mailbox_id": entry.mailbox_id,
    }


def _event_data(row: dict[str, Any], mail: ParsedMail | None) -> dict[str, Any]:
    return {
        "sender": row["sender"],
        "ticket_id": row["ticket_id"],
        "reason": row["reason"],
        "problems": list(mail.problems) if mail else [],
    }
