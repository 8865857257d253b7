"""Mail out: queue in the reply's transaction, send later over SMTP, retry with backoff.

Each queued row carries its own Message-ID, so the mail can thread (In-Reply-To and
References point at the customer's mails; Reply-To is help+t<ticket>@, which threads back
even when a mail client drops the headers).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import InboundMail, MailThread, OutboundMail
from servicecycle.customers import service as customers
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.tickets.models import Message, Ticket

MAILER = Actor.system("email")
MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    sender: str


def _reply_address(sender: str, ticket_id: int) -> str:
    local, _, domain = sender.partition("@")
    return f"{local}+t{ticket_id}@{domain}"


async def _customer_address(session: AsyncSession, ticket: Ticket) -> str | None:
    found = await customers.identities_of(session, [ticket.requester_id])
    emails = [i.value for i in found[ticket.requester_id] if i.kind == "email"]
    return emails[0] if emails else None


async def queue(
    session: AsyncSession,
    ticket: Ticket,
    *,
    kind: str,
    body: str,
    sender: str,
    message: Message | None = None,
) -> OutboundMail | None:
    """Queue a mail to the ticket's requester, threaded on the ticket's mails."""
    to = await _customer_address(session, ticket)
    if to is None:
        return None
    domain = sender.partition("@")[2] or "servicecycle.localhost"
    row = OutboundMail(
        ticket_id=ticket.id,
        message_row_id=message.id if message else None,
        kind=kind,
        to_address=to,
        subject=f"[#{ticket.id}] {ticket.subject}"
        if kind == "acknowledgement"
        else f"Re: [#{ticket.id}] {ticket.subject}",
        body_text=body,
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        reply_to=_reply_address(sender, ticket.id),
        next_attempt_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    await session.execute(
        insert(MailThread)
        .values(message_id=row.message_id, ticket_id=ticket.id)
        .on_conflict_do_nothing()
    )
    await record(
        session,
        "mail.queued",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=MAILER,
        data={"outbound_id": row.id, "kind": kind, "to": to},
    )
    return row


async def _thread_headers(session: AsyncSession, row: OutboundMail) -> None:
    """Point the mail at the customer's mails on this ticket (read at send time, so a mail
    queued in the same transaction as the ticket still threads on the mail that opened it)."""
    found = await session.scalars(
        select(InboundMail.message_id)
        .where(InboundMail.ticket_id == row.ticket_id, InboundMail.message_id.is_not(None))
        .order_by(InboundMail.id)
    )
    ids = [mid for mid in found.all() if mid]
    row.in_reply_to = ids[-1] if ids else None
    row.references = " ".join(ids[-20:])


def compose(row: OutboundMail, sender: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, row.to_address, row.subject
    mail["Message-ID"], mail["Date"] = row.message_id, formatdate(localtime=False)
    if row.reply_to:
        mail["Reply-To"] = row.reply_to
    if row.in_reply_to:
        mail["In-Reply-To"] = row.in_reply_to
    if row.references:
        mail["References"] = row.references
    if row.kind == "acknowledgement":
        mail["Auto-Submitted"] = "auto-replied"  # so other systems do not answer it
    mail.set_content(row.body_text)
    return mail


async def deliver_due(
    session: AsyncSession, smtp: SmtpSettings, *, limit: int = 100, now: datetime | None = None
) -> tuple[int, int]:
    """Send queued mails that are due (claimed with SKIP LOCKED); returns (sent, failed)."""
    now = now or clock.now()
    rows = list(
        (
            await session.scalars(
                select(OutboundMail)
                .where(OutboundMail.status == "queued", OutboundMail.next_attempt_at <= now)
                .order_by(OutboundMail.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    sent = failed = 0
    for row in rows:
        row.attempts += 1
        if row.ticket_id is not None and row.attempts == 1:
            await _thread_headers(session, row)
        try:
            await aiosmtplib.send(
                compose(row, smtp.sender),
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                start_tls=smtp.starttls,
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            permanent = (
                isinstance(exc, aiosmtplib.SMTPRecipientsRefused) or row.attempts >= MAX_ATTEMPTS
            )
            if permanent:
                row.status = "failed"
                failed += 1
                await record(
                    session,
                    "mail.failed",
                    subject_type="ticket",
                    subject_id=row.ticket_id or 0,
                    actor=MAILER,
                    data={"outbound_id": row.id, "error": row.last_error},
                )
            else:
                row.next_attempt_at = now + timedelta(minutes=2**row.attempts)
            continue
        row.status, row.sent_at = "sent", clock.now()
        sent += 1
        await record(
            session,
            "mail.sent",
            subject_type="ticket",
            subject_id=row.ticket_id or 0,
            actor=MAILER,
            data={"outbound_id": row.id, "message_id": row.message_id},
        )
    await session.flush()
    return sent, failed
