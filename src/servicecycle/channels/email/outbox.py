"""Mail out: queue in the reply's transaction, send later over SMTP, retry with backoff.

Each queued row carries its own Message-ID, so the mail can thread (In-Reply-To and
References point at the customer's mails; Reply-To is help+t<ticket>@, which threads back
even when a mail client drops the headers).

Delivery is at least once, and always under the row's one Message-ID: a row is claimed
(``sending``, a token, a lease) and committed *before* SMTP is spoken, and settled in a
transaction of its own after. A sender that dies between the server's acceptance and the
settling leaves the row ``sending``; when the lease ends another sender sends it again,
with the same Message-ID, so mail clients and our own intake see one message. No mail is
lost, and none is sent under two identities; a rare second copy is possible and shows in
``attempts``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message as MailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
import structlog
from sqlalchemy import BigInteger, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.models import InboundMail, MailThread, OutboundMail
from servicecycle.customers import service as customers
from servicecycle.customers.models import CustomerIdentity
from servicecycle.events.bus import Appended, dispatch_many
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.kit import clock
from servicecycle.tickets.bulk import attach, json_rows, new_row
from servicecycle.tickets.models import Message, Ticket

MAILER = Actor.system("email")
MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=10)  # a claim older than this was left by a sender that died
BATCH = 50  # mails claimed at once and sent over one SMTP connection
SMTP_TIMEOUT = 30.0
# Mail loops that no header gives away (a robot that answers without Auto-Submitted or
# Precedence): an address that has been sent this many automatic acknowledgements within
# the window gets no more until it quietens down (RFC 3834: automatic responses are rare).
ACK_LIMIT = 5
ACK_WINDOW = timedelta(hours=1)

log = structlog.get_logger(__name__)


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
    note: dict[str, Any] | None = None,
    to: str | None = None,
    subject: str | None = None,
) -> OutboundMail | None:
    """Queue a mail about the ticket, threaded on the ticket's mails: to the requester
    unless ``to`` is given (None when the requester has no address), with the ticket's
    subject unless ``subject`` is given; ``note`` is added to the ``mail.queued`` event."""
    to = to or await _customer_address(session, ticket)
    if to is None:
        return None
    if kind == "acknowledgement" and await _looping(session, to):
        await record(
            session,
            "mail.suppressed",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=MAILER,
            data={
                "kind": kind,
                "to": to,
                "reason": f"mail loop suspected: {ACK_LIMIT} acknowledgements to this "
                f"address within {ACK_WINDOW.total_seconds() / 60:.0f} minutes",
            },
        )
        return None
    domain = sender.partition("@")[2] or "servicecycle.localhost"
    row = OutboundMail(
        ticket_id=ticket.id,
        message_row_id=message.id if message else None,
        kind=kind,
        to_address=to,
        subject=subject
        or (
            f"[#{ticket.id}] {ticket.subject}"
            if kind == "acknowledgement"
            else f"Re: [#{ticket.id}] {ticket.subject}"
        ),
        body_text=body,
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        reply_to=_reply_address(sender, ticket.id),
        next_attempt_at=clock.now(),
        created_at=clock.now(),  # not the transaction's time: threading orders by it
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
        data={"outbound_id": row.id, "kind": kind, "to": to, **(note or {})},
    )
    return row


@dataclass(frozen=True)
class Mail:
    """One mail for ``queue_many``: ``queue``'s arguments, with its moment."""

    ticket: Ticket
    kind: str
    body: str
    sender: str
    at: datetime
    message: Message | None = None
    note: dict[str, Any] | None = None
    subject: str | None = None
    to: str | None = None

    @classmethod
    def reply(cls, ticket: Ticket, message: Message, *, sender: str, at: datetime) -> Mail:
        """A public reply's copy to the requester (e-mail tickets, missed chats)."""
        return cls(
            ticket=ticket,
            kind="reply",
            body=message.body_text,
            sender=sender,
            at=at,
            message=message,
        )


async def queue_many(session: AsyncSession, mails: list[Mail]) -> list[OutboundMail | None]:
    """``queue`` for each mail (to the ticket's requester unless the mail names its ``to``,
    with the ticket's subject unless it has its own), each at its own moment: the addresses
    and the loop check read in one query each, the rows, their threads and their events
    written in one statement each."""
    rows, events = await queue_rows(session, mails)
    await record_many(session, [e for e in events if e is not None])
    return rows


# the e-mail identities of many customers, oldest first: one statement text for any number
_EMAILS = (
    select(CustomerIdentity.customer_id, CustomerIdentity.value)
    .where(
        CustomerIdentity.customer_id == any_(bindparam("ids", type_=ARRAY(BigInteger))),
        CustomerIdentity.kind == "email",
    )
    .order_by(CustomerIdentity.id)
)


async def addresses(session: AsyncSession, customer_ids: list[int]) -> dict[int, str | None]:
    """Each customer's address for mail from the desk (their first e-mail identity, as
    ``customers.identities_of`` orders them); plain values, no identity rows loaded."""
    found: dict[int, str | None] = dict.fromkeys(customer_ids)
    if found:
        for customer_id, value in await session.execute(_EMAILS, {"ids": list(found)}):
            if found[customer_id] is None:
                found[customer_id] = value
    return found


# many mails and their threads in one statement of one text whatever their number (the rows
# one JSON document, ``bulk.json_rows``, inserted in its order); a mail without an address
# goes to its requester's first e-mail identity, and is left out if there is none (looked up
# once per row: the CTE is materialised, so the filter and the insert read the same value)
_QUEUE_MANY = text("""
WITH m AS MATERIALIZED (
    SELECT e, n, coalesce(e->>3, (
        SELECT ci.value FROM customer_identities ci
        WHERE ci.customer_id = CAST(e->>9 AS bigint) AND ci.kind = 'email'
        ORDER BY ci.id LIMIT 1
    )) AS a
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
),
made AS (
    INSERT INTO outbound_mails (ticket_id, message_row_id, kind, to_address, subject, body_text,
                                message_id, reply_to, next_attempt_at, created_at)
    SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS bigint), e->>2, a, e->>4, e->>5, e->>6,
           e->>7, CAST(e->>8 AS timestamptz), CAST(e->>8 AS timestamptz)
    FROM m WHERE a IS NOT NULL
    ORDER BY n
    RETURNING id, message_id, ticket_id, to_address
),
threads AS (
    INSERT INTO mail_threads (message_id, ticket_id)
    SELECT message_id, ticket_id FROM made
    ON CONFLICT DO NOTHING
)
SELECT id, message_id, to_address FROM made
""")


async def queue_rows(
    session: AsyncSession, mails: list[Mail]
) -> tuple[list[OutboundMail | None], list[NewEvent | None]]:
    """``queue_many`` without recording: the rows (None: not queued) and each mail's event
    (``mail.queued``, ``mail.suppressed`` or None), for a caller that records them in order
    with its own."""
    if not mails:
        return [], []
    acks = [m for m in mails if m.kind == "acknowledgement"]
    # the loop check needs the acknowledgements' addresses first; any other mail's address
    # is read by the statement that stores it
    address: dict[int, str | None] = {}
    recent: dict[str, list[datetime]] = {}
    if acks:
        address = await addresses(session, [m.ticket.requester_id for m in mails if m.to is None])
        rows = await session.execute(
            select(OutboundMail.to_address, OutboundMail.created_at).where(
                OutboundMail.kind == "acknowledgement",
                OutboundMail.to_address.in_(
                    {a for m in acks if (a := m.to or address[m.ticket.requester_id])}
                ),
                OutboundMail.created_at >= min(m.at for m in acks) - ACK_WINDOW,
            )
        )
        for ack_to, created in rows.all():
            recent.setdefault(ack_to, []).append(created)
    made: list[OutboundMail | None] = []
    events: list[NewEvent | None] = []
    for mail in mails:
        ticket, to = mail.ticket, mail.to or address.get(mail.ticket.requester_id)
        if to is None and acks:  # no address
            made.append(None)
            events.append(None)
            continue
        if mail.kind == "acknowledgement" and to is not None:  # (known: acks ask first)
            sent = recent.setdefault(to, [])
            if sum(1 for t in sent if mail.at - ACK_WINDOW <= t) >= ACK_LIMIT:
                made.append(None)
                events.append(
                    NewEvent(
                        "mail.suppressed",
                        "ticket",
                        ticket.id,
                        MAILER,
                        mail.at,
                        {
                            "kind": mail.kind,
                            "to": to,
                            "reason": f"mail loop suspected: {ACK_LIMIT} acknowledgements to "
                            f"this address within {ACK_WINDOW.total_seconds() / 60:.0f} minutes",
                        },
                    )
                )
                continue
            sent.append(mail.at)
        domain = mail.sender.partition("@")[2] or "servicecycle.localhost"
        made.append(
            new_row(
                OutboundMail,
                ticket_id=ticket.id,
                message_row_id=mail.message.id if mail.message else None,
                kind=mail.kind,
                to_address=to,
                subject=mail.subject
                or (
                    f"[#{ticket.id}] {ticket.subject}"
                    if mail.kind == "acknowledgement"
                    else f"Re: [#{ticket.id}] {ticket.subject}"
                ),
                body_text=mail.body,
                message_id=f"<{uuid.uuid4().hex}@{domain}>",
                in_reply_to=None,
                references="",
                reply_to=_reply_address(mail.sender, ticket.id),
                status="queued",
                attempts=0,
                last_error=None,
                next_attempt_at=mail.at,
                created_at=mail.at,
                sent_at=None,
                claim_token=None,
                claimed_until=None,
            )
        )
        events.append(None)
    stored = await _store(
        session,
        [
            (row, mail.ticket.requester_id)
            for row, mail in zip(made, mails, strict=True)
            if row is not None
        ],
    )
    made = [row if row is None or row in stored else None for row in made]
    for index, (mail, row) in enumerate(zip(mails, made, strict=True)):
        if row is not None:
            events[index] = NewEvent(
                "mail.queued",
                "ticket",
                mail.ticket.id,
                MAILER,
                mail.at,
                {
                    "outbound_id": row.id,
                    "kind": mail.kind,
                    "to": row.to_address,
                    **(mail.note or {}),
                },
            )
    return made, events


async def _store(session: AsyncSession, rows: list[tuple[OutboundMail, int]]) -> set[OutboundMail]:
    """Insert the new rows (every column given; a row without ``to_address`` goes to its
    requester's address, as ``addresses`` reads it, and is not stored if there is none) and
    their threads in one statement, then keep those stored in the session as loaded rows
    (nothing left for the unit of work to do). Returns the rows stored."""
    if not rows:
        return set()
    await session.flush()  # the tickets and messages they name go first
    params = {
        "rows": json_rows(
            [
                [
                    r.ticket_id,
                    r.message_row_id,
                    r.kind,
                    r.to_address,
                    r.subject,
                    r.body_text,
                    r.message_id,
                    r.reply_to,
                    r.created_at,
                    requester_id,
                ]
                for r, requester_id in rows
            ]
        )
    }
    found = {
        message_id: (row_id, to)
        for row_id, message_id, to in await session.execute(_QUEUE_MANY, params)
    }
    stored = [row for row, _ in rows if row.message_id in found]
    for row in stored:
        row.__dict__["to_address"] = found[row.message_id][1]
    attach(session, stored, [found[row.message_id][0] for row in stored])
    return set(stored)


async def _looping(session: AsyncSession, to: str) -> bool:
    """Whether ``to`` had ``ACK_LIMIT`` acknowledgements within ``ACK_WINDOW``."""
    recent = (
        select(OutboundMail.id)
        .where(
            OutboundMail.kind == "acknowledgement",
            OutboundMail.to_address == to,
            OutboundMail.created_at >= clock.now() - ACK_WINDOW,
        )
        .limit(ACK_LIMIT)
        .subquery()
    )
    count = await session.scalar(select(func.count()).select_from(recent))
    return (count or 0) >= ACK_LIMIT


async def queue_plain(
    session: AsyncSession, *, kind: str, to: str, subject: str, body: str, sender: str
) -> OutboundMail:
    """Queue a mail that belongs to no ticket (a sign-in link, say); the send job delivers
    it like any other, with no threading headers and no reply address."""
    domain = sender.partition("@")[2] or "servicecycle.localhost"
    row = OutboundMail(
        ticket_id=None,
        kind=kind,
        to_address=to,
        subject=subject,
        body_text=body,
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        next_attempt_at=clock.now(),
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row


async def _thread_headers(session: AsyncSession, rows: list[OutboundMail]) -> None:
    """Answer the customer's latest mail on each row's ticket (In-Reply-To) and name the
    whole conversation, theirs and ours, oldest first (References). Read when a mail is first
    claimed, so a mail queued with its ticket still threads on the mail that opened it; two
    queries for the whole batch."""
    tickets = {row.ticket_id for row in rows if row.ticket_id is not None}
    if not tickets:
        return
    inbound = await session.execute(
        select(InboundMail.ticket_id, InboundMail.received_at, InboundMail.message_id).where(
            InboundMail.ticket_id.in_(tickets),
            InboundMail.message_id.is_not(None),
            InboundMail.outcome.in_(("ticket", "reply")),
        )
    )
    outbound = await session.execute(
        select(
            OutboundMail.ticket_id,
            OutboundMail.created_at,
            OutboundMail.message_id,
            OutboundMail.id,
        ).where(OutboundMail.ticket_id.in_(tickets), OutboundMail.status != "failed")
    )
    mails: dict[int, list[tuple[datetime, str, int | None]]] = {t: [] for t in tickets}
    for ticket_id, at, message_id in inbound.all():
        if ticket_id is not None and message_id:
            mails[ticket_id].append((at, message_id, None))  # theirs
    for ticket_id, at, message_id, row_id in outbound.all():
        if ticket_id is not None:
            mails[ticket_id].append((at, message_id, row_id))  # ours
    for row in rows:
        if row.ticket_id is None:
            continue
        # before this row: theirs, and ours queued earlier (a tie goes to theirs first)
        conversation = sorted(
            (m for m in mails[row.ticket_id] if m[2] is None or m[2] < row.id),
            key=lambda m: (m[0], m[2] is not None),
        )
        answered = [mid for _, mid, ours in conversation if ours is None]
        row.in_reply_to = answered[-1] if answered else None
        row.references = " ".join(mid for _, mid, _ in conversation[-20:])


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable as plain text where a client does not decode it


def compose(row: OutboundMail, sender: str) -> MailMessage:
    """The mail as sent. Built with the compat policy: the modern one parses every header it
    is given into objects, which was most of the cost of sending."""
    mail = MailMessage()
    mail.set_payload(row.body_text, _UTF8_QP)  # text/plain; charset="utf-8", quoted-printable
    headers = [
        ("From", sender),
        ("To", row.to_address),
        ("Subject", row.subject),
        ("Message-ID", row.message_id),
        ("Date", formatdate(localtime=False)),
        ("Reply-To", row.reply_to),
        ("In-Reply-To", row.in_reply_to),
        ("References", row.references),
        # so other systems do not answer an acknowledgement
        ("Auto-Submitted", "auto-replied" if row.kind == "acknowledgement" else None),
    ]
    for name, value in headers:
        if value:
            mail[name] = value if value.isascii() else Header(value, "utf-8").encode()
    return mail


async def deliver_due(
    session: AsyncSession, smtp: SmtpSettings, *, limit: int = 100, now: datetime | None = None
) -> tuple[int, int]:
    """Entry for the scheduled task, which hands in a session: the claims and results are
    committed in transactions of their own on the same engine (or connection), never in
    ``session``'s transaction, which stays empty."""
    factory = async_sessionmaker(
        bind=session.bind,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )
    return await deliver(factory, smtp, limit=limit, now=now)


async def deliver(
    sessions: async_sessionmaker[AsyncSession],
    smtp: SmtpSettings,
    *,
    limit: int = 500,
    batch: int = BATCH,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Send due mail (and mail whose sender died mid-send), a claimed batch at a time, until
    none is due or ``limit`` were tried; returns (sent, failed for good)."""
    sent = failed = tried = 0
    while tried < limit:
        claims, dead = await _claim(sessions, smtp, min(batch, limit - tried), now or clock.now())
        failed += dead
        if not claims:
            break
        tried += len(claims)
        ok, bad = await _send(sessions, smtp, claims, now)
        sent, failed = sent + ok, failed + bad
    return sent, failed


@dataclass(frozen=True)
class Claim:
    id: int
    token: str
    attempts: int
    mail: MailMessage
    claimed_at: datetime


async def _claim(
    sessions: async_sessionmaker[AsyncSession], smtp: SmtpSettings, size: int, at: datetime
) -> tuple[list[Claim], int]:
    """Mark up to ``size`` due rows ``sending`` under one fresh token, and commit, before a
    byte goes to SMTP. Rows left ``sending`` by a dead sender come first."""
    token = uuid.uuid4().hex
    claims: list[Claim] = []
    dead = 0
    async with sessions() as session, session.begin():
        stuck = select(OutboundMail).where(
            OutboundMail.status == "sending", OutboundMail.claimed_until <= at
        )
        due = select(OutboundMail).where(
            OutboundMail.status == "queued", OutboundMail.next_attempt_at <= at
        )
        rows = list(
            (
                await session.scalars(
                    stuck.order_by(OutboundMail.claimed_until)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if len(rows) < size:
            rows += (
                await session.scalars(
                    due.order_by(OutboundMail.next_attempt_at, OutboundMail.id)
                    .limit(size - len(rows))
                    .with_for_update(skip_locked=True)
                )
            ).all()
        await _thread_headers(session, [row for row in rows if row.attempts == 0])
        for row in rows:
            if row.status == "sending":  # its sender stopped between claim and result
                row.last_error = (
                    f"sending stopped unfinished (attempt {row.attempts}); "
                    "sent again with the same Message-ID"
                )
                log.warning("mail.resend", outbound_id=row.id, attempts=row.attempts)
                if row.attempts >= MAX_ATTEMPTS:
                    await _fail(session, row)
                    dead += 1
                    continue
            row.status, row.claim_token, row.claimed_until = "sending", token, at + LEASE
            row.attempts += 1
            claims.append(
                Claim(
                    id=row.id,
                    token=token,
                    attempts=row.attempts,
                    mail=compose(row, smtp.sender),
                    claimed_at=clock.now(),
                )
            )
        await session.flush()
    return claims, dead


def _permanent(exc: Exception) -> bool:
    """The receiving server refused this mail for good (5xx to its recipient or content);
    refusals of our login or sender are configuration, and are retried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return exc.code >= 500
    return False


async def _send(
    sessions: async_sessionmaker[AsyncSession],
    smtp: SmtpSettings,
    claims: list[Claim],
    now: datetime | None,
) -> tuple[int, int]:
    sent = failed = 0
    client: aiosmtplib.SMTP | None = None
    unreachable: Exception | None = None  # the server could not be reached: no use retrying now
    try:
        for index, claim in enumerate(claims):
            if clock.now() - claim.claimed_at > LEASE / 2:  # too slow: let the rest go back
                await _release(sessions, claims[index:])
                break
            error: Exception | None = unreachable
            connecting = False
            try:
                if unreachable is None:
                    if client is None:
                        connecting = True
                        client = aiosmtplib.SMTP(
                            hostname=smtp.host,
                            port=smtp.port,
                            username=smtp.username,
                            password=smtp.password,
                            start_tls=smtp.starttls,
                            timeout=SMTP_TIMEOUT,
                        )
                        await client.connect()
                        connecting = False
                    await client.send_message(claim.mail)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                error = exc
                if connecting:  # the rest of the batch waits for the next round
                    unreachable = exc
                await _drop(client)  # whatever state the session is in, the next mail starts fresh
                client = None
            outcome = await _settle(sessions, claim, error, now)
            sent += outcome == "sent"
            failed += outcome == "failed"
    finally:
        await _drop(client)
    return sent, failed


async def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


async def _settle(
    sessions: async_sessionmaker[AsyncSession],
    claim: Claim,
    error: Exception | None,
    now: datetime | None,
) -> str:
    """Record what became of one claimed mail; only the holder of the claim may.

    Committed without waiting for the disk (``synchronous_commit = off``): should the
    database server itself crash in the next fraction of a second, the row is still
    ``sending`` and is sent again under its Message-ID, which the protocol allows anyway."""
    async with sessions() as session, session.begin():
        await session.execute(text("SET LOCAL synchronous_commit = off"))
        if error is None:  # the common case in two statements: the update, and its event
            sent = (
                await session.execute(
                    update(OutboundMail)
                    .where(
                        OutboundMail.id == claim.id,
                        OutboundMail.status == "sending",
                        OutboundMail.claim_token == claim.token,
                    )
                    .values(
                        status="sent", sent_at=clock.now(), claim_token=None, claimed_until=None
                    )
                    .returning(
                        OutboundMail.ticket_id,
                        OutboundMail.message_id,
                        OutboundMail.kind,
                        OutboundMail.attempts,
                    )
                )
            ).one_or_none()
            if sent is None:
                # our lease ran out and another sender took the row over: its result counts
                log.warning("mail.claim_lost", outbound_id=claim.id)
                return "lost"
            await record(
                session,
                "mail.sent",
                subject_type="ticket",
                subject_id=sent.ticket_id or 0,
                actor=MAILER,
                data={
                    "outbound_id": claim.id,
                    "message_id": sent.message_id,
                    "kind": sent.kind,
                    "attempts": sent.attempts,
                },
            )
            return "sent"
        row = await session.scalar(
            select(OutboundMail).where(OutboundMail.id == claim.id).with_for_update()
        )
        if row is None or row.status != "sending" or row.claim_token != claim.token:
            # our lease ran out and another sender took the row over: its result counts
            log.warning("mail.claim_lost", outbound_id=claim.id)
            return "lost"
        row.claim_token, row.claimed_until = None, None
        row.last_error = f"{type(error).__name__}: {error}"[:2000]
        if _permanent(error) or row.attempts >= MAX_ATTEMPTS:
            await _fail(session, row)
            return "failed"
        row.status = "queued"
        row.next_attempt_at = (now or clock.now()) + backoff(row.attempts)
        return "retry"


_SETTLE_HISTORY = text("""
WITH settled AS (
    UPDATE outbound_mails
    SET status = 'sent', sent_at = :until, attempts = attempts + 1, claim_token = NULL,
        claimed_until = NULL
    WHERE id IN (
        SELECT id FROM outbound_mails
        WHERE status = 'queued' AND next_attempt_at <= :until
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, ticket_id, message_id, kind, attempts
)
INSERT INTO events (kind, subject_type, subject_id, actor_type, actor_id, data, occurred_at)
SELECT 'mail.sent', 'ticket', coalesce(ticket_id, 0)::text, 'system', 'email',
       jsonb_build_object('outbound_id', id, 'message_id', message_id, 'kind', kind,
                          'attempts', attempts, 'to', NULL, 'note', CAST(:note AS text)),
       :until
FROM settled ORDER BY id
RETURNING id, subject_id, (data->>'outbound_id')::bigint, data->>'message_id', data->>'kind',
          (data->>'attempts')::int
""")


async def settle_history(session: AsyncSession, *, until: datetime, note: str) -> int:
    """Mark every mail queued up to ``until`` sent, to no one, and append each one's
    ``mail.sent`` event (its data says ``to: null`` and the ``note``) in one statement:
    for history that is loaded, not lived (a simulated business's months of mail), where
    speaking SMTP to a sink would only cost time. Returns how many were settled."""
    rows = (await session.execute(_SETTLE_HISTORY, {"until": until, "note": note})).all()
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, OutboundMail):  # changed behind the ORM's back
            session.expire(loaded)
    appended = [
        Appended(
            event_id,
            "mail.sent",
            "ticket",
            subject_id,
            MAILER.type,
            MAILER.id,
            {
                "outbound_id": outbound_id,
                "message_id": message_id,
                "kind": kind,
                "attempts": attempts,
                "to": None,
                "note": note,
            },
            until,
        )
        for event_id, subject_id, outbound_id, message_id, kind, attempts in rows
    ]
    await dispatch_many(session, appended)
    return len(appended)


def backoff(attempts: int) -> timedelta:
    """2, 4, 8, 16, 32 minutes ... at most four hours."""
    return timedelta(minutes=min(2**attempts, 240))


async def _release(sessions: async_sessionmaker[AsyncSession], claims: list[Claim]) -> None:
    """Claims not tried (the batch ran long): back to the queue, the attempt not counted."""
    async with sessions() as session, session.begin():
        for claim in claims:
            row = await session.scalar(
                select(OutboundMail).where(OutboundMail.id == claim.id).with_for_update()
            )
            if row is not None and row.status == "sending" and row.claim_token == claim.token:
                row.status, row.claim_token, row.claimed_until = "queued", None, None
                row.attempts -= 1


async def _fail(session: AsyncSession, row: OutboundMail) -> None:
    row.status, row.claim_token, row.claimed_until = "failed", None, None
    await record(
        session,
        "mail.failed",
        subject_type="ticket",
        subject_id=row.ticket_id or 0,
        actor=MAILER,
        data={
            "outbound_id": row.id,
            "kind": row.kind,
            "to": row.to_address,
            "attempts": row.attempts,
            "error": row.last_error,
        },
    )
